//! The pages of the errors about the request itself: authentication, authorization, input,
//! preconditions and the server's own failures.

use super::ErrorDoc;
use crate::http::error::ErrorCode;
use crate::http::extract::KEY_DISABLED_DETAIL;

pub const ANALYTICS_NOT_CONFIGURED: ErrorDoc = ErrorDoc {
    what_happened: "Unkey answers this when analytics is not switched on for a workspace. \
            keyward never sends it: its analytics is always on and lives in the same database \
            as the keys. The code is listed so that clients written for Unkey find its page.",
    example_detail: "Analytics is not configured for this workspace.",
    how_to_fix: &[
        "Nothing to do on keyward. If you see it, the answer came from another server: check \
                the base URL your client uses.",
    ],
    common_mistakes: &["Pointing a client at Unkey's hosted API instead of keyward."],
    related: &[
        ErrorCode::InvalidAnalyticsQuery,
        ErrorCode::InsufficientPermissions,
    ],
};

pub const INVALID_INPUT: ErrorDoc = ErrorDoc {
    what_happened: "The request body did not match the route's schema, or a value broke a \
            rule the schema cannot express. The `errors` array lists each problem: `location` \
            is a JSON-schema path such as `/properties/name/minLength`, `message` says what \
            was wrong, and `fix`, when present, suggests a correction. Bodies must be JSON \
            sent with `Content-Type: application/json`, and unknown fields are rejected.",
    example_detail: "The request body does not match the schema of /v2/apis.createApi.",
    how_to_fix: &[
        "Read each entry of `errors`: the end of `location` names the rule that failed \
                (`minLength`, `required`, `additionalProperties`, ...) and the part before it \
                names the field.",
        "Compare the body with the route's reference; field names are camelCase and \
                case-sensitive.",
        "Send the body as JSON with the header `Content-Type: application/json`.",
    ],
    common_mistakes: &[
        "Misspelled fields, or fields from another API version such as `apiId` in \
                `keys.verifyKey`; unknown fields are rejected.",
        "Numbers or booleans sent as strings, such as a quoted `limit`.",
        "Posting form data, or no body at all.",
    ],
    related: &[
        ErrorCode::RequestBodyUnreadable,
        ErrorCode::RequestBodyTooLarge,
        ErrorCode::PermissionsQuerySyntaxError,
    ],
};

pub const PROTECTED_RESOURCE: ErrorDoc = ErrorDoc {
    what_happened: "`apis.deleteApi` was called on an API with delete protection switched \
            on. Protection exists so that an API whose keys are in use cannot be removed by a \
            script or a mistyped id; while it is on, the API and its keys stay untouched.",
    example_detail: "This API is protected against deletion. Remove the protection before \
            deleting it.",
    how_to_fix: &[
        "Confirm the id is really the API you mean to delete, and check with your team: \
                protection is switched on deliberately.",
        "Have an operator remove the protection with `keyward api unprotect api_...`.",
        "Call `apis.deleteApi` again.",
    ],
    common_mistakes: &[
        "Deleting an API by an id copied from the wrong environment.",
        "Running the CLI against a different database than the server (check `--database` \
                or `KEYWARD_DATABASE`), so the change never reaches the server.",
    ],
    related: &[ErrorCode::ApiNotFound, ErrorCode::PreconditionFailed],
};

pub const PRECONDITION_FAILED: ErrorDoc = ErrorDoc {
    what_happened: "The request was valid and allowed, but the server or the resource is \
            not set up for what it asks. Typical cases: a recoverable key or `decrypt: true` \
            when the server has no encryption master key or the API does not store encrypted \
            keys, and a `keys.verifyKey` call naming a ratelimit that exists neither on the \
            key nor on its identity.",
    example_detail: "Vault hasn't been set up.",
    how_to_fix: &[
        "Read `detail`: it names the setting or resource that is missing.",
        "For recoverable keys or decryption: `Vault hasn't been set up.` means the server \
                was started without `--master-key`; `... does not support key encryption.` \
                means the API has not opted in (`keyward api recoverable API_ID on`).",
        "For a ratelimit in `keys.verifyKey`, create it on the key or its identity, or \
                send both `limit` and `duration` so it is applied ad hoc.",
    ],
    common_mistakes: &[
        "Setting `recoverable: true` on a server without encryption configured.",
        "Misspelling a ratelimit name in `keys.verifyKey`.",
    ],
    related: &[
        ErrorCode::AnalyticsNotConfigured,
        ErrorCode::ProtectedResource,
        ErrorCode::InvalidInput,
    ],
};

pub const UNEXPECTED_ERROR: ErrorDoc = ErrorDoc {
    what_happened: "Something failed inside keyward that your request did not cause. So \
            that no internals leak, the response says nothing about the cause; the server \
            logged it together with the request id. Whether a change you sent was applied is \
            not known from the response alone.",
    example_detail: "An unexpected error occurred. The cause has been logged with this \
            request's id.",
    how_to_fix: &[
        "Note the request id, from `meta.requestId` or the `X-Request-Id` header.",
        "Retry after a short pause; before repeating a change, check whether the first \
                attempt was applied.",
        "If it keeps failing, give the request id to the operator, who finds the cause by \
                searching the server log for it.",
    ],
    common_mistakes: &[
        "Reporting the failure without the request id, which leaves the operator nothing \
                to search for.",
    ],
    related: &[ErrorCode::ServiceUnavailable, ErrorCode::RequestTimeout],
};

pub const SERVICE_UNAVAILABLE: ErrorDoc = ErrorDoc {
    what_happened: "keyward could not reach or use its storage while handling the request: \
            the SQLite file, or PostgreSQL or Redis in a multi-node setup. This is usually \
            temporary, so keyward answers 503 (Unkey answers 500), and `GET /ready` answers 503 \
            too while the node's database does not respond. As with every 5xx, the body leaves \
            out the cause; it is in the server log under the request id.",
    example_detail: "The storage backend could not complete the request. Please try again.",
    how_to_fix: &[
        "Retry with exponential backoff.",
        "If it persists, give `meta.requestId` (also sent as the `X-Request-Id` header) to \
                the operator.",
        "Operators: find the request id in the server log, then check that the database is \
                reachable, has free disk space and is writable by keyward.",
    ],
    common_mistakes: &[
        "Retrying at once in a tight loop, which adds load to a struggling database.",
        "A full disk, or file permissions that stop keyward writing its SQLite file.",
    ],
    related: &[ErrorCode::UnexpectedError, ErrorCode::RequestTimeout],
};

pub const AUTHENTICATION_MISSING: ErrorDoc = ErrorDoc {
    what_happened: "The request had no `Authorization` header. Every route except `GET \
            /v2/liveness` needs a root key, sent as `Authorization: Bearer unkey_...`, so \
            keyward cannot tell who is calling and stops here.",
    example_detail: "The request has no Authorization header. Send your root key as \
            'Authorization: Bearer <root key>'.",
    how_to_fix: &[
        "Add the header `Authorization: Bearer <root key>` to the request.",
        "With an SDK, pass the root key when you create the client, and check that the \
                environment variable it comes from is set.",
        "If you have no root key, ask an operator to create one with `keyward root-key \
                create --workspace ws_...`.",
    ],
    common_mistakes: &[
        "An unset or empty environment variable, so no key is sent.",
        "A proxy or load balancer that drops the `Authorization` header.",
        "Sending the key in another header, such as `X-API-Key`.",
    ],
    related: &[
        ErrorCode::AuthenticationMalformed,
        ErrorCode::AuthenticationKeyNotFound,
        ErrorCode::InvalidInput,
    ],
};

pub const AUTHENTICATION_MALFORMED: ErrorDoc = ErrorDoc {
    what_happened: "An `Authorization` header was present but not of the form `Bearer \
            <key>`. keyward expects the word `Bearer`, a space and then the root key; a header \
            with another scheme, with no scheme, or with nothing after `Bearer` is refused \
            before any key is looked up.",
    example_detail: "The Authorization header must have the form 'Bearer ROOT_KEY', but \
            the 'Bearer ' prefix is missing.",
    how_to_fix: &[
        "Send `Authorization: Bearer unkey_...`, with one space after `Bearer`.",
        "Check the header your code builds by logging its first few characters, never the \
                whole key.",
    ],
    common_mistakes: &[
        "Sending the bare key without `Bearer ` in front.",
        "Using another scheme, such as `Basic` or `Token`.",
        "A template that produced `Bearer ` followed by an empty variable.",
    ],
    related: &[
        ErrorCode::AuthenticationMissing,
        ErrorCode::AuthenticationKeyNotFound,
    ],
};

pub const AUTHENTICATION_KEY_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "The key after `Bearer` is not a root key this server knows. Either no \
            key with that value is in keyward's database (it was never created, was deleted, \
            or comes from another server), or it is an ordinary key issued with \
            `keys.createKey`: such keys can be verified, but they cannot call management \
            routes.",
    example_detail: "The provided root key is invalid. We could not find the requested \
            key.",
    how_to_fix: &[
        "Make sure you are sending a root key, which starts with `unkey_`, and not a key \
                made for your users.",
        "Run `keyward root-key list --workspace ws_...` and look for a row whose `start` \
                matches the beginning of your key; if none does, the key was deleted or \
                belongs to another server.",
        "Ask an operator for a new key: `keyward root-key create --workspace ws_...`.",
    ],
    common_mistakes: &[
        "Pointing the client at the wrong keyward server or environment.",
        "A key copied with surrounding quotes or whitespace, or cut short.",
        "Still using a key after `keyward root-key delete`.",
    ],
    related: &[
        ErrorCode::AuthenticationMalformed,
        ErrorCode::KeyDisabled,
        ErrorCode::Forbidden,
    ],
};

pub const INSUFFICIENT_PERMISSIONS: ErrorDoc = ErrorDoc {
    what_happened: "Your root key is valid, but it holds no permission that allows this \
            call. `detail` names the permissions that would have been enough, as tuple strings \
            such as `api.*.create_key` or `api.<apiId>.read_api`: any one alternative joined \
            by `or` suffices, while parts joined by `and` are all needed. A root key created \
            without `--permission` holds every permission.",
    example_detail: "Missing one of these permissions: api.*.create_key or \
            api.api_7kXb2QmR4n.create_key",
    how_to_fix: &[
        "Read the permission names in `detail`.",
        "See what the key holds with `keyward root-key list --workspace ws_...`.",
        "Issue a key that holds them, for example `keyward root-key create --workspace \
                ws_... --permission api.*.create_key`, switch your service to it, then remove \
                the old key with `keyward root-key delete key_...`.",
    ],
    common_mistakes: &[
        "Expecting one permission to imply another, such as `read_key` implying \
                `read_api`.",
        "Expecting a grant for one API (`api.<apiId>...`) to cover other APIs.",
        "Using a key meant only for verification (`api.*.verify_key`) for management \
                calls.",
    ],
    related: &[
        ErrorCode::Forbidden,
        ErrorCode::KeyDisabled,
        ErrorCode::ApiNotFound,
    ],
};

pub const FORBIDDEN: ErrorDoc = ErrorDoc {
    what_happened: "keyward refuses this root key because it has expired. Expired root \
            keys stay in the database so that operators can see what expired and when, but \
            they no longer authenticate anything. `detail` gives the moment the key expired.",
    example_detail: "The provided root key is invalid. The key expired on \
            2026-03-01T00:00:00Z.",
    how_to_fix: &[
        "Confirm the expiry with `keyward root-key list --workspace ws_...`, finding the \
                key by its `start`.",
        "Create a replacement with `keyward root-key create --workspace ws_...`, giving it \
                the permissions the old key had.",
        "Deploy the new key, then remove the expired one with `keyward root-key delete \
                key_...`.",
    ],
    common_mistakes: &[
        "Forgetting to rotate a short-lived key before it runs out.",
        "A server clock that is far off; expiry is checked against the server's time.",
    ],
    related: &[
        ErrorCode::KeyDisabled,
        ErrorCode::AuthenticationKeyNotFound,
        ErrorCode::InsufficientPermissions,
    ],
};

pub const KEY_DISABLED: ErrorDoc = ErrorDoc {
    what_happened: "The root key you sent exists, but it has been disabled, so keyward \
            refuses every call made with it. A key is only disabled on purpose, by someone \
            running `keyward root-key disable`; it keeps its id and permissions and can be \
            switched back on. Running servers honour such a change within one second.",
    example_detail: KEY_DISABLED_DETAIL,
    how_to_fix: &[
        "Ask your team why the key was disabled before changing anything: it may have \
                leaked or be in the middle of being retired.",
        "Find the key with `keyward root-key list --workspace ws_...`: its `start` matches \
                the first characters of the key you are sending. Note its `key_...` id.",
        "If it is safe to use again, run `keyward root-key enable key_...`.",
        "Otherwise issue a replacement with `keyward root-key create --workspace ws_...` \
                (add `--permission` for each permission it needs; with none, it holds them \
                all), deploy it, then delete the old key with `keyward root-key delete \
                key_...`.",
    ],
    common_mistakes: &[
        "Re-enabling a key that was disabled because it leaked, instead of replacing it.",
        "Sharing one root key between several services, so disabling it for one stops them \
                all.",
        "Running the CLI against a different database than the server (check `--database` \
                or `KEYWARD_DATABASE`), so the change never reaches the server.",
    ],
    related: &[
        ErrorCode::Forbidden,
        ErrorCode::AuthenticationKeyNotFound,
        ErrorCode::WorkspaceDisabled,
        ErrorCode::InsufficientPermissions,
    ],
};

pub const WORKSPACE_DISABLED: ErrorDoc = ErrorDoc {
    what_happened: "Your root key is fine, but the workspace it acts on has been disabled \
            by an operator with `keyward workspace disable`. While a workspace is disabled, \
            every call made with any of its root keys is refused. Its APIs, keys and settings \
            are kept, and work again once it is enabled.",
    example_detail: "The provided root key is invalid. The workspace is disabled.",
    how_to_fix: &[
        "Ask your team or the operator why the workspace was disabled; it is always a \
                deliberate act.",
        "If it should be active, an operator runs `keyward workspace enable ws_...`; \
                running servers pick this up within one second.",
    ],
    common_mistakes: &[
        "Disabling the wrong workspace; `keyward root-key list --workspace ws_...` shows \
                which keys belong to which workspace.",
        "Running the CLI against a different database than the server (check `--database` \
                or `KEYWARD_DATABASE`), so the change never reaches the server.",
    ],
    related: &[
        ErrorCode::KeyDisabled,
        ErrorCode::WorkspaceNotFound,
        ErrorCode::Forbidden,
    ],
};

pub const PERMISSIONS_QUERY_SYNTAX_ERROR: ErrorDoc = ErrorDoc {
    what_happened: "The `permissions` field of `keys.verifyKey` holds a query that could \
            not be parsed. A query joins permission slugs with `AND`, `OR` and parentheses, \
            for example `documents.read AND (documents.write OR admin)`. `detail` gives the \
            position, counted from 0, where parsing stopped.",
    example_detail: "Missing closing parenthesis at position 26: every '(' needs a \
            matching ')'.",
    how_to_fix: &[
        "Look at the position given in `detail` and correct the query there.",
        "Close every `(` with a `)`, and put exactly one `AND` or `OR` between two \
                permissions.",
        "Use only letters, digits and `. _ - * : /` in permission slugs.",
    ],
    common_mistakes: &[
        "Writing `&&`, `||` or commas instead of `AND` and `OR`.",
        "A trailing operator left over from building the query in a loop, as in `a AND b \
                AND`.",
    ],
    related: &[ErrorCode::InvalidInput, ErrorCode::InsufficientPermissions],
};

pub const REQUEST_BODY_UNREADABLE: ErrorDoc = ErrorDoc {
    what_happened: "keyward could not read the request body from the connection, so it \
            never got as far as parsing it. This happens when the client or a proxy stops \
            sending in the middle of the body, sends fewer bytes than its `Content-Length` \
            announced, or uses a broken transfer encoding.",
    example_detail: "The request body could not be read.",
    how_to_fix: &[
        "Retry the request; a dropped connection is usually transient.",
        "Check proxies between the client and keyward for size or buffering limits that \
                cut bodies short.",
        "If you set `Content-Length` yourself, make sure it equals the body's size in \
                bytes.",
    ],
    common_mistakes: &[
        "Computing `Content-Length` from the number of characters rather than bytes of a \
                non-ASCII body.",
    ],
    related: &[
        ErrorCode::InvalidInput,
        ErrorCode::RequestBodyTooLarge,
        ErrorCode::RequestTimeout,
    ],
};

pub const REQUEST_TIMEOUT: ErrorDoc = ErrorDoc {
    what_happened: "The request's body had not fully arrived when the server's time limit \
            for a request (`--request-timeout`, 10 seconds by default) ran out, so keyward \
            stopped waiting for it; nothing in it was applied. The limit runs from the moment \
            the request's headers arrived. A request whose body arrived but whose work took too \
            long (a database that stopped answering) is answered 503 `service_unavailable` \
            instead.",
    example_detail: "The request body did not arrive within the request timeout of 10000 ms.",
    how_to_fix: &[
        "Check that the client sends the whole body at once and that `Content-Length` \
                matches the bytes actually sent.",
        "Retry; a slow or congested link may have trickled the body.",
        "Split very large bodies, such as `keys.migrateKeys` imports, into smaller requests.",
    ],
    common_mistakes: &[
        "Sending many thousands of keys in one `keys.migrateKeys` call.",
        "A slow link or proxy that trickles the body to the server.",
    ],
    related: &[
        ErrorCode::RequestBodyTooLarge,
        ErrorCode::ServiceUnavailable,
        ErrorCode::UnexpectedError,
    ],
};

pub const REQUEST_BODY_TOO_LARGE: ErrorDoc = ErrorDoc {
    what_happened: "The request body is larger than 10 MiB (10485760 bytes), the most \
            keyward accepts in one request. It is rejected before being parsed, so nothing in \
            it was applied.",
    example_detail: "The request body exceeds the maximum allowed size of 10485760 bytes.",
    how_to_fix: &[
        "Split the work into several requests, for example import keys with \
                `keys.migrateKeys` in batches of a few thousand.",
        "Keep `meta` objects small: store large documents elsewhere and put a reference in \
                `meta`.",
    ],
    common_mistakes: &[
        "Importing a whole key export in a single `keys.migrateKeys` call.",
        "Attaching large blobs to key or identity metadata.",
    ],
    related: &[
        ErrorCode::InvalidInput,
        ErrorCode::RequestTimeout,
        ErrorCode::RequestBodyUnreadable,
    ],
};

pub const ROUTE_NOT_FOUND: ErrorDoc = ErrorDoc {
    what_happened: "No route exists at this path. keyward serves Unkey's v2 API: every \
            route is `POST /v2/<group>.<operation>`, such as `POST /v2/keys.verifyKey`, plus \
            `GET /v2/liveness`. Paths are case-sensitive. Routes of Unkey products outside \
            keyward's scope, such as deployments, are not served.",
    example_detail: "No route matches POST /v2/keys.verify.",
    how_to_fix: &[
        "Compare the path, letter for letter, with the route list in the API reference.",
        "Check the base URL of your client: it should be the server's address, with \
                `/v2/...` appended only once.",
        "Move clients that still call Unkey's v1 paths (`/v1/...`) to a v2 SDK.",
    ],
    common_mistakes: &[
        "Calling v1 paths such as `/v1/keys.verifyKey`.",
        "Wrong letter case, as in `keys.verifykey`, or a trailing slash.",
        "A base URL that already ends in `/v2`, giving `/v2/v2/...`.",
    ],
    related: &[ErrorCode::MethodNotAllowed],
};

pub const METHOD_NOT_ALLOWED: ErrorDoc = ErrorDoc {
    what_happened: "The path exists, but not for this HTTP method. Every keyward API route \
            takes `POST` with a JSON body; the only exception is `GET /v2/liveness`.",
    example_detail: "GET is not allowed on /v2/keys.getKey; use POST.",
    how_to_fix: &[
        "Send the request as `POST`, with its parameters in a JSON body rather than in the \
                query string.",
        "For health checks, use `GET /v2/liveness`.",
    ],
    common_mistakes: &[
        "Opening an API route in a browser, which sends `GET`.",
        "A health check pointed at an API route instead of `GET /v2/liveness`.",
    ],
    related: &[ErrorCode::RouteNotFound],
};

pub const WORKSPACE_RATE_LIMITED: ErrorDoc = ErrorDoc {
    what_happened: "Your workspace has used up its allowance of API requests for the \
            current minute. The operator can cap how many requests a workspace makes per \
            minute (a cap of 0 blocks it entirely), and the cap covers all its root keys \
            together. Responses carry `RateLimit-Limit`, `RateLimit-Remaining` and \
            `RateLimit-Reset`; this one also `Retry-After`.",
    example_detail: "This workspace has exceeded its API rate limit of 600/1m0s. Please try \
            again later.",
    how_to_fix: &[
        "Wait the number of seconds given in `Retry-After`, then retry with backoff.",
        "Send fewer calls: cache what you read often and use batch routes such as \
                `ratelimit.multiLimit`.",
        "If the cap is too low for your normal traffic, ask the operator to raise it \
                (`keyward workspace limit WORKSPACE_ID --requests-per-minute N`, or `none`).",
    ],
    common_mistakes: &[
        "Retrying at once in a loop, which keeps the workspace over its cap.",
        "Several services sharing one workspace without sharing out its request budget.",
    ],
    related: &[ErrorCode::WorkspaceDisabled],
};
