//! The human documentation of every error code: what happened, an example `detail`, how to fix it,
//! the usual mistakes and the related codes.
//!
//! The code table itself (URN, status, title) lives in [`super::error`]; this file owns only the
//! prose of the page served at `/docs/errors/<system>/<category>/<specific>`. [`doc`] matches every
//! code with no wildcard arm, so a code added to the table without its page does not compile.
//!
//! The text is plain: the page renderer escapes it and turns `backticked` spans into `<code>`.
//! Commands shown are those of keyward's CLI; every one of them also takes `--database URL`
//! (or `KEYWARD_DATABASE`), which must name the database the server uses.

use super::error::ErrorCode;

/// Human documentation for one error code.
#[derive(Debug, Clone, Copy)]
pub struct ErrorDoc {
    /// One or two paragraphs: what happened, when keyward returns this.
    pub what_happened: &'static str,
    /// A realistic `detail` string keyward would send with this code.
    pub example_detail: &'static str,
    /// Steps to fix it, in order (each a sentence; may contain `code` in backticks, rendered as
    /// `<code>`).
    pub how_to_fix: &'static [&'static str],
    /// Common mistakes that lead here.
    pub common_mistakes: &'static [&'static str],
    /// Related codes, linked from the page.
    pub related: &'static [ErrorCode],
}

/// The documentation of `code`. Every code has one (exhaustive match, no wildcard arm).
pub fn doc(code: ErrorCode) -> ErrorDoc {
    match code {
        ErrorCode::KeyNotFound => ErrorDoc {
            what_happened: "The key named in the request (its `keyId`, or for `keys.whoami` the \
                key itself) does not match a live key in the workspace of your root key. A key \
                that never existed, one that was deleted, one whose API was deleted and one that \
                belongs to another workspace all get this same answer, so that no workspace can \
                probe another's keys.",
            example_detail: "The specified key was not found.",
            how_to_fix: &[
                "Check the `keyId`: key ids start with `key_` and are case-sensitive.",
                "List the keys of the API you expect it in with `apis.listKeys` and confirm it is \
                    there.",
                "Make sure your root key belongs to the same workspace as the key; a root key sees \
                    only its own workspace.",
            ],
            common_mistakes: &[
                "Sending the key's secret value where its `keyId` is expected, or the other way \
                    round.",
                "Using a root key of another environment, for example a staging key against \
                    production keys.",
                "Expecting `keys.verifyKey` to fail this way: verification answers an unknown key \
                    with HTTP 200, `valid: false` and code `NOT_FOUND`.",
            ],
            related: &[
                ErrorCode::ApiNotFound,
                ErrorCode::AuthenticationKeyNotFound,
                ErrorCode::InsufficientPermissions,
            ],
        },
        ErrorCode::WorkspaceNotFound => ErrorDoc {
            what_happened: "Your root key was found, but the workspace it is bound to is no longer \
                in keyward's database. Every root key acts on exactly one workspace, so without it \
                the key cannot do anything. This rarely comes from the request; it usually means \
                the server now runs on a different or restored database.",
            example_detail: "The provided root key is invalid. The requested workspace does not \
                exist.",
            how_to_fix: &[
                "Confirm which database the server uses (`--database` or `KEYWARD_DATABASE`) and \
                    that it is the one you expect.",
                "Run `keyward root-key list --workspace ws_...` against that database to see \
                    whether the workspace and its keys are there.",
                "If the workspace is really gone, create one with `keyward workspace create --name \
                    N` and issue a root key for it with `keyward root-key create --workspace \
                    ws_...`.",
            ],
            common_mistakes: &[
                "Swapping or restoring the database while clients still hold root keys from the \
                    old one.",
                "Running the CLI and the server against different databases.",
            ],
            related: &[
                ErrorCode::AuthenticationKeyNotFound,
                ErrorCode::WorkspaceDisabled,
            ],
        },
        ErrorCode::ApiNotFound => ErrorDoc {
            what_happened: "The `apiId` in the request does not name a live API in your root key's \
                workspace: it never existed, it was removed with `apis.deleteApi`, or it belongs \
                to another workspace. Some routes, such as `keys.createKey` and `apis.listKeys`, \
                also answer this way when your root key may not use that API, so that the reply \
                does not reveal whether it exists.",
            example_detail: "The requested API does not exist or has been deleted.",
            how_to_fix: &[
                "Check the `apiId`: API ids start with `api_` and are case-sensitive.",
                "Make sure the root key belongs to the workspace that owns the API.",
                "If the API does exist, check with `keyward root-key list --workspace ws_...` that \
                    the key holds a permission for it, such as `api.*.create_key` or \
                    `api.<apiId>.create_key`.",
            ],
            common_mistakes: &[
                "Sending the API's name instead of its id.",
                "Using a root key limited to one API (`api.<otherId>...` permissions) on a route \
                    that hides permission failures.",
            ],
            related: &[
                ErrorCode::KeyNotFound,
                ErrorCode::InsufficientPermissions,
                ErrorCode::ProtectedResource,
            ],
        },
        ErrorCode::MigrationNotFound => ErrorDoc {
            what_happened: "A `keys.migrateKeys` call named a `migrationId` that is not registered \
                in your root key's workspace. A migration records how the imported keys were \
                hashed, and keys can only be imported under a migration that already exists in the \
                same workspace.",
            example_detail: "The requested migration does not exist or has been deleted.",
            how_to_fix: &[
                "Check the `migrationId` for typos; ids are case-sensitive.",
                "Ask the operator of this server which migrations exist for your workspace, and to \
                    register one if none fits.",
                "Make sure the root key belongs to the workspace the migration was registered for.",
            ],
            common_mistakes: &[
                "Reusing a migration id from another server, such as Unkey's hosted service.",
                "Importing with a root key of a different workspace than the migration's.",
            ],
            related: &[ErrorCode::ApiNotFound, ErrorCode::InvalidInput],
        },
        ErrorCode::KeySpaceNotFound => ErrorDoc {
            what_happened: "Each API keeps its keys in a keyspace (id `ks_...`). keyward found the \
                API or key you named, but not the keyspace behind it. A well-formed request cannot \
                cause this on its own: it points at inconsistent data on the server, for example \
                after a partial restore or a manual database edit.",
            example_detail: "The keyspace of this API could not be found.",
            how_to_fix: &[
                "Retry once; if it happens again, note `meta.requestId` and report it to the \
                    operator.",
                "Operators: look up that request id in the server log and inspect the API's \
                    records in the database.",
                "As a workaround, create a new API with `apis.createApi` and issue keys there.",
            ],
            common_mistakes: &[
                "Editing or deleting rows in keyward's database by hand.",
                "Restoring only part of a database backup.",
            ],
            related: &[
                ErrorCode::ApiNotFound,
                ErrorCode::KeyAuthNotFound,
                ErrorCode::UnexpectedError,
            ],
        },
        ErrorCode::PermissionNotFound => ErrorDoc {
            what_happened: "A permission named in the request, by id (`perm_...`) or by slug, does \
                not exist in your workspace. `permissions.getPermission` and \
                `permissions.deletePermission` return this for an unknown permission, and \
                `keys.removePermissions` returns it when a slug you asked to remove is not defined \
                at all.",
            example_detail: "Permission 'documents.write' was not found.",
            how_to_fix: &[
                "Compare the slug with the output of `permissions.listPermissions`.",
                "If the permission should exist, create it with `permissions.createPermission`.",
                "When removing permissions from a key, send only slugs it has; `keys.getKey` lists \
                    them.",
            ],
            common_mistakes: &[
                "Sending a permission's display name where its slug or id is expected.",
                "Referring to a permission right after another process deleted it.",
            ],
            related: &[
                ErrorCode::RoleNotFound,
                ErrorCode::PermissionAlreadyExists,
                ErrorCode::KeyNotFound,
            ],
        },
        ErrorCode::RoleNotFound => ErrorDoc {
            what_happened: "A role named in the request, by id (`role_...`) or by name, does not \
                exist in your workspace. Unlike permission slugs, roles are never created on the \
                fly: `keys.createKey`, `keys.updateKey` and the `keys.*Roles` routes fail with \
                this code if any listed role is unknown, and `permissions.getRole` and \
                `permissions.deleteRole` return it for an unknown role.",
            example_detail: "Role 'admin' was not found.",
            how_to_fix: &[
                "List the existing roles with `permissions.listRoles` and check the spelling.",
                "Create missing roles with `permissions.createRole` before assigning them to keys.",
                "Send the original request again.",
            ],
            common_mistakes: &[
                "Assuming roles are created automatically, the way permission slugs are.",
                "Creating roles with a root key of one workspace and assigning them with a key of \
                    another.",
            ],
            related: &[
                ErrorCode::PermissionNotFound,
                ErrorCode::RoleAlreadyExists,
                ErrorCode::KeyNotFound,
            ],
        },
        ErrorCode::KeyAuthNotFound => ErrorDoc {
            what_happened: "\"Key auth\" is the older name of a keyspace, the record that holds an \
                API's keys and their settings. This code reports the same situation as \
                `key_space_not_found`: the API exists, but its keyspace record is missing. It is \
                kept for clients that expect it. It does not come from a mistake in the request \
                but from inconsistent data on the server.",
            example_detail: "The key configuration of this API could not be found.",
            how_to_fix: &[
                "Retry once; if it happens again, report `meta.requestId` to the operator.",
                "Operators: find that request id in the server log and check the API's records in \
                    the database.",
                "As a workaround, create a new API with `apis.createApi`.",
            ],
            common_mistakes: &[
                "Editing keyward's database by hand or restoring only part of a backup.",
            ],
            related: &[ErrorCode::KeySpaceNotFound, ErrorCode::ApiNotFound],
        },
        ErrorCode::RatelimitNamespaceNotFound => ErrorDoc {
            what_happened: "The ratelimit namespace named in the request, by name or by id \
                (`rlns_...`), does not exist in your workspace. The override routes \
                (`ratelimit.setOverride`, `getOverride`, `listOverrides` and `deleteOverride`) \
                need an existing namespace; only `ratelimit.limit` and `ratelimit.multiLimit` \
                create a namespace on its first use.",
            example_detail: "This namespace does not exist.",
            how_to_fix: &[
                "Check that the name is spelled exactly as in your `ratelimit.limit` calls.",
                "Create the namespace by making one `ratelimit.limit` call with it, using a root \
                    key that holds `ratelimit.*.create_namespace`.",
                "Set the override again.",
            ],
            common_mistakes: &[
                "Configuring overrides before any traffic has reached the namespace.",
                "Namespace names that differ between environments, such as `api.requests` and \
                    `api_requests`.",
            ],
            related: &[
                ErrorCode::RatelimitOverrideNotFound,
                ErrorCode::RatelimitNamespaceGone,
            ],
        },
        ErrorCode::RatelimitOverrideNotFound => ErrorDoc {
            what_happened: "No override in the namespace matches the identifier in the request. \
                `ratelimit.getOverride` also answers this way when your root key may not read \
                overrides there, so that the reply does not reveal whether one exists. \
                `ratelimit.deleteOverride` matches the identifier exactly: to remove a wildcard \
                override, send the pattern itself.",
            example_detail: "This override does not exist.",
            how_to_fix: &[
                "List the namespace's overrides with `ratelimit.listOverrides` and copy the \
                    identifier exactly, including any `*`.",
                "Make sure the root key holds `ratelimit.*.read_override` or \
                    `ratelimit.<namespaceId>.read_override`.",
                "If the override should exist, create it with `ratelimit.setOverride`.",
            ],
            common_mistakes: &[
                "Deleting by a concrete identifier an override that was set as a wildcard pattern.",
                "Looking in the wrong namespace.",
            ],
            related: &[
                ErrorCode::RatelimitNamespaceNotFound,
                ErrorCode::InsufficientPermissions,
            ],
        },
        ErrorCode::IdentityNotFound => ErrorDoc {
            what_happened: "The identity named in the request does not exist or was deleted. \
                Identity routes accept either keyward's identity id (`id_...`) or your own \
                `externalId`; neither matched a live identity in your root key's workspace.",
            example_detail: "This identity does not exist.",
            how_to_fix: &[
                "Check the value: the `externalId` is the id from your own system, such as a user \
                    id, while the identity id is the one keyward returned.",
                "Search with `identities.listIdentities` and its `search` field.",
                "If it should exist, create it with `identities.createIdentity`.",
            ],
            common_mistakes: &[
                "Using an identity after `identities.deleteIdentity`.",
                "Letter case or whitespace differences in the `externalId`, which is compared \
                    exactly.",
            ],
            related: &[ErrorCode::IdentityAlreadyExists, ErrorCode::KeyNotFound],
        },
        ErrorCode::AuditLogNotFound => ErrorDoc {
            what_happened: "The audit log entry you asked for does not exist in your workspace. \
                keyward records an audit entry (id `log_...`) for every change made through the \
                API; an entry of another workspace is reported as missing, like one that never \
                existed.",
            example_detail: "The requested audit log entry does not exist.",
            how_to_fix: &[
                "Check the id: audit log ids start with `log_`.",
                "Make sure the root key belongs to the workspace in which the change was made.",
            ],
            common_mistakes: &[
                "Sending a request id (`req_...`) where an audit log id is expected.",
            ],
            related: &[ErrorCode::KeyNotFound, ErrorCode::IdentityNotFound],
        },
        ErrorCode::IdentityAlreadyExists => ErrorDoc {
            what_happened: "`identities.createIdentity` was called with an `externalId` that a \
                live identity in this workspace already uses. An external id maps to at most one \
                identity per workspace, so keyward refuses to create a second one and leaves the \
                existing identity as it was.",
            example_detail: "Identity with externalId 'user_123' already exists in this workspace.",
            how_to_fix: &[
                "Fetch the existing identity with `identities.getIdentity`, passing the \
                    `externalId`.",
                "To change its metadata or rate limits, call `identities.updateIdentity` instead.",
                "If you really need a fresh identity, delete the old one with \
                    `identities.deleteIdentity` first.",
            ],
            common_mistakes: &[
                "Treating create as an upsert in sign-up code that can run twice for the same \
                    user.",
                "Retrying a create whose first attempt succeeded but timed out on the client.",
            ],
            related: &[ErrorCode::IdentityNotFound],
        },
        ErrorCode::RoleAlreadyExists => ErrorDoc {
            what_happened: "`permissions.createRole` was called with a name that another role in \
                this workspace already has. Role names are unique per workspace because keys refer \
                to roles by name.",
            example_detail: "A role with name 'admin' already exists in this workspace.",
            how_to_fix: &[
                "Reuse the existing role; `permissions.getRole` returns it with its permissions.",
                "To change what it grants, call `permissions.setRolePermissions`.",
                "If you meant a new role, choose another name.",
            ],
            common_mistakes: &[
                "Setup scripts that create the same roles on every deploy without checking first.",
            ],
            related: &[
                ErrorCode::RoleNotFound,
                ErrorCode::PermissionAlreadyExists,
            ],
        },
        ErrorCode::PermissionAlreadyExists => ErrorDoc {
            what_happened: "`permissions.createPermission` was called with a slug that a \
                permission in this workspace already uses. Slugs are unique per workspace, and a \
                difference in letter case alone does not make two slugs different.",
            example_detail: "A permission with slug 'documents.read' already exists in this \
                workspace.",
            how_to_fix: &[
                "Look up the existing permission with `permissions.getPermission` and reuse it.",
                "If you meant a new permission, choose another slug.",
            ],
            common_mistakes: &[
                "Setup scripts that create the same permissions on every run.",
                "Expecting `Documents.Read` and `documents.read` to be two permissions.",
            ],
            related: &[
                ErrorCode::PermissionNotFound,
                ErrorCode::RoleAlreadyExists,
            ],
        },
        ErrorCode::RatelimitNamespaceGone => ErrorDoc {
            what_happened: "The ratelimit namespace exists but has been deleted. `ratelimit.limit` \
                and `ratelimit.multiLimit` refuse to count against it rather than quietly create a \
                new namespace with the same name, so that deleted limits do not come back by \
                accident. In a `multiLimit` batch, one deleted namespace fails the whole batch.",
            example_detail: "This namespace has been deleted.",
            how_to_fix: &[
                "Use a different namespace name in your calls; it is created on first use.",
                "If the namespace was deleted by mistake, ask the operator of this server whether \
                    it can be restored.",
            ],
            common_mistakes: &[
                "Deleting a namespace that production code still uses.",
            ],
            related: &[ErrorCode::RatelimitNamespaceNotFound],
        },
        ErrorCode::AnalyticsNotConfigured => ErrorDoc {
            what_happened: "`analytics.getVerifications` queries a store of past verifications, \
                and this keyward server has none configured. Key verification itself works \
                normally; only the analytics query is unavailable.",
            example_detail: "Verification analytics are not configured on this server.",
            how_to_fix: &[
                "Ask the operator to set up verification analytics in keyward's configuration.",
                "Until then, record the outcomes of `keys.verifyKey` in your own application if \
                    you need them.",
            ],
            common_mistakes: &[
                "Assuming analytics are switched on by default on a self-hosted server.",
            ],
            related: &[
                ErrorCode::PreconditionFailed,
                ErrorCode::InsufficientPermissions,
            ],
        },
        ErrorCode::InvalidInput => ErrorDoc {
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
        },
        ErrorCode::ProtectedResource => ErrorDoc {
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
        },
        ErrorCode::PreconditionFailed => ErrorDoc {
            what_happened: "The request was valid and allowed, but the server or the resource is \
                not set up for what it asks. Typical cases: a recoverable key or `decrypt: true` \
                when the server has no encryption master key or the API does not store encrypted \
                keys, and a `keys.verifyKey` call naming a ratelimit that exists neither on the \
                key nor on its identity.",
            example_detail: "Recoverable keys are not available: this server has no encryption \
                master key configured.",
            how_to_fix: &[
                "Read `detail`: it names the setting or resource that is missing.",
                "For recoverable keys or decryption, ask the operator to configure keyward's \
                    master key and to enable encrypted key storage for the API.",
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
        },
        ErrorCode::UnexpectedError => ErrorDoc {
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
        },
        ErrorCode::ServiceUnavailable => ErrorDoc {
            what_happened: "keyward could not reach or use its storage while handling the request: \
                the SQLite file, or PostgreSQL or Redis in a multi-node setup. This is usually \
                temporary. As with every 5xx, the body leaves out the cause; it is in the server \
                log under the request id.",
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
        },
        ErrorCode::AuthenticationMissing => ErrorDoc {
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
        },
        ErrorCode::AuthenticationMalformed => ErrorDoc {
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
        },
        ErrorCode::AuthenticationKeyNotFound => ErrorDoc {
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
        },
        ErrorCode::InsufficientPermissions => ErrorDoc {
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
        },
        ErrorCode::Forbidden => ErrorDoc {
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
        },
        ErrorCode::KeyDisabled => ErrorDoc {
            what_happened: "The root key you sent exists, but it has been disabled, so keyward \
                refuses every call made with it. A key is only disabled on purpose, by someone \
                running `keyward root-key disable`; it keeps its id and permissions and can be \
                switched back on. Running servers honour such a change within one second.",
            example_detail: "The provided root key is invalid. The key is disabled.",
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
        },
        ErrorCode::WorkspaceDisabled => ErrorDoc {
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
        },
        ErrorCode::PermissionsQuerySyntaxError => ErrorDoc {
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
            related: &[
                ErrorCode::InvalidInput,
                ErrorCode::InsufficientPermissions,
            ],
        },
        ErrorCode::RequestBodyUnreadable => ErrorDoc {
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
        },
        ErrorCode::RequestTimeout => ErrorDoc {
            what_happened: "The request did not finish within the server's time limit, so keyward \
                stopped working on it. Either the body arrived too slowly or the work itself took \
                too long, for example a very large batch against a busy database.",
            example_detail: "The request took too long to complete and was cancelled.",
            how_to_fix: &[
                "Retry; before repeating a change, check whether the first attempt was applied.",
                "Split large batches, such as `keys.migrateKeys` imports, into smaller requests.",
                "If ordinary requests time out, tell the operator and include the request id: the \
                    server or its database may be overloaded.",
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
        },
        ErrorCode::RequestBodyTooLarge => ErrorDoc {
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
        },
        ErrorCode::RouteNotFound => ErrorDoc {
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
        },
        ErrorCode::MethodNotAllowed => ErrorDoc {
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
        },
        ErrorCode::WorkspaceRateLimited => ErrorDoc {
            what_happened: "Your workspace has used up its allowance of API requests for the \
                current minute. The operator can cap how many requests a workspace makes per \
                minute (a cap of 0 blocks it entirely), and the cap covers all its root keys \
                together. Responses carry `RateLimit-Limit`, `RateLimit-Remaining` and \
                `RateLimit-Reset`; this one also `Retry-After`.",
            example_detail: "This workspace has exceeded its API rate limit of 600 requests per \
                minute. Please try again later.",
            how_to_fix: &[
                "Wait the number of seconds given in `Retry-After`, then retry with backoff.",
                "Send fewer calls: cache what you read often and use batch routes such as \
                    `ratelimit.multiLimit`.",
                "If the cap is too low for your normal traffic, ask the operator to raise it.",
            ],
            common_mistakes: &[
                "Retrying at once in a loop, which keeps the workspace over its cap.",
                "Several services sharing one workspace without sharing out its request budget.",
            ],
            related: &[ErrorCode::WorkspaceDisabled],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_page_with_text_and_fix_steps() {
        for &code in ErrorCode::ALL {
            let page = doc(code);
            assert!(!page.what_happened.trim().is_empty(), "{}", code.urn());
            assert!(!page.example_detail.trim().is_empty(), "{}", code.urn());
            assert!(!page.how_to_fix.is_empty(), "{}", code.urn());
            for step in page.how_to_fix.iter().chain(page.common_mistakes) {
                assert!(!step.trim().is_empty(), "{}", code.urn());
            }
        }
    }

    #[test]
    fn no_code_lists_itself_or_the_same_code_twice_as_related() {
        for &code in ErrorCode::ALL {
            let related = doc(code).related;
            assert!(!related.contains(&code), "{} lists itself", code.urn());
            for (i, other) in related.iter().enumerate() {
                assert!(
                    !related[i + 1..].contains(other),
                    "{} lists {} twice",
                    code.urn(),
                    other.urn()
                );
            }
        }
    }

    #[test]
    fn backticks_are_balanced_so_every_code_span_closes() {
        for &code in ErrorCode::ALL {
            let page = doc(code);
            let texts = [page.what_happened]
                .into_iter()
                .chain(page.how_to_fix.iter().copied())
                .chain(page.common_mistakes.iter().copied());
            for text in texts {
                assert_eq!(text.matches('`').count() % 2, 0, "{}: {text}", code.urn());
            }
        }
    }

    #[test]
    fn the_disabled_key_page_tells_an_operator_how_to_find_enable_or_replace_the_key() {
        let steps = doc(ErrorCode::KeyDisabled).how_to_fix.join(" ");
        for command in [
            "root-key list",
            "root-key enable",
            "root-key create",
            "root-key delete",
        ] {
            assert!(steps.contains(command), "missing `{command}`");
        }
    }
}
