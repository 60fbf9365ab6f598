//! The embedded dashboard over HTTP: sign-in, sessions, anti-forgery tokens, security headers,
//! permissions, and the pages' changes reaching the API. (The browser suite in `browser-tests/`
//! drives the same pages in Chromium.)

use std::time::Duration;

use reqwest::redirect::Policy;
use serde_json::json;

use crate::helpers::{eventually, spawn_app, TestApp};
use crate::served::ServeCommand;

/// A browser without a cookie jar: the tests carry cookies themselves, to look at them.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

pub(crate) struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The value of `<input ... name="NAME" value="...">`, the first one.
    pub(crate) fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\""))?;
        let start = self.body[..at].rfind("<input")?;
        let end = at + self.body[at..].find('>')?;
        let tag = &self.body[start..end];
        let value = tag.split("value=\"").nth(1)?;
        Some(value.split('"').next()?.to_string())
    }
}

impl Browser {
    pub(crate) fn new(app_url: &str) -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: app_url.to_string(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, page: &Page) {
        for cookie in page.set_cookies() {
            let pair = cookie.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_string(), value.to_string()));
                }
            }
        }
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        let page = Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        };
        self.keep(&page);
        page
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.finish(response).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).expect("form");
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        self.finish(response).await
    }

    /// Signs in with `root_key`; returns the anti-forgery token of the session's forms.
    pub(crate) async fn sign_in(&mut self, root_key: &str) -> String {
        let form = self.get("/sign-in").await;
        let token = form.input("_csrf").expect("the sign-in form's token");
        let signed = self
            .post(
                "/sign-in",
                &[("_csrf", &token), ("rootKey", root_key), ("next", "/apis")],
            )
            .await;
        assert_eq!(signed.status, 303, "{}", signed.body);
        assert_eq!(signed.location(), "/apis");
        let apis = self.get("/apis").await;
        assert_eq!(apis.status, 200, "{}", apis.body);
        apis.input("_csrf").expect("a form token on the APIs page")
    }
}

pub(crate) async fn create_api(app: &TestApp, name: &str) -> String {
    let created = app
        .post("/v2/apis.createApi", json!({ "name": name }))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    created.body["data"]["apiId"]
        .as_str()
        .expect("apiId")
        .to_string()
}

#[tokio::test]
async fn pages_need_a_session_and_carry_strict_security_headers() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    let page = browser.get("/apis").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/sign-in?next=/apis");
    let page = browser.get("/").await;
    assert_eq!(page.status, 303);

    let sign_in = browser.get("/sign-in").await;
    assert_eq!(sign_in.status, 200);
    let header = |name: &str| {
        sign_in
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert_eq!(header("cache-control"), "no-store");
    assert!(header("content-type").starts_with("text/html"));
    // No inline script or style anywhere in the page.
    assert!(!sign_in.body.contains("<script>"), "{}", sign_in.body);
    assert!(!sign_in.body.contains("style="), "{}", sign_in.body);

    let css = browser.get("/assets/dashboard.css").await;
    assert_eq!(css.status, 200);
    assert!(css.body.contains("prefers-color-scheme: dark"));
    assert_eq!(browser.get("/assets/nope.js").await.status, 404);
}

#[tokio::test]
async fn a_root_key_signs_in_and_the_cookie_holds_only_a_random_session_id() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    let form = browser.get("/sign-in").await;
    let token = form.input("_csrf").expect("token");
    let signed = browser
        .post(
            "/sign-in",
            &[
                ("_csrf", &token),
                ("rootKey", &app.root_key),
                ("next", "/audit"),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location(), "/audit");
    let session_cookie = signed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kw_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(
        session_cookie.contains("SameSite=Strict"),
        "{session_cookie}"
    );
    assert!(
        !session_cookie.contains("Secure"),
        "plain http: {session_cookie}"
    );
    let id = session_cookie
        .trim_start_matches("kw_session=")
        .split(';')
        .next()
        .unwrap();
    assert!(id.len() >= 40, "{id}");
    assert!(!session_cookie.contains(&app.root_key));

    // Behind a proxy that says https, the cookie is Secure.
    let mut browser = Browser::new(&app.base_url);
    let form = browser.get("/sign-in").await;
    let token = form.input("_csrf").expect("token");
    let over_https = browser
        .client
        .post(format!("{}/sign-in", app.base_url))
        .header("cookie", browser.cookie_header())
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("_csrf", token.as_str()),
                ("rootKey", app.root_key.as_str()),
            ])
            .unwrap(),
        )
        .send()
        .await
        .expect("POST");
    let cookie = over_https
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("kw_session="))
        .expect("cookie")
        .to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // A redirect after sign-in never leaves the site.
    let mut browser = Browser::new(&app.base_url);
    let form = browser.get("/sign-in?next=//evil.example/").await;
    assert_eq!(form.input("next").as_deref(), Some("/apis"));
}

#[tokio::test]
async fn wrong_keys_are_refused_and_repeated_failures_are_throttled() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    // Without the form's token, even the right key is refused.
    let page = browser
        .post("/sign-in", &[("rootKey", &app.root_key)])
        .await;
    assert_eq!(page.status, 403);
    assert!(page
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("kw_session=")));

    for attempt in 0..10 {
        let form = browser.get("/sign-in").await;
        let token = form.input("_csrf").unwrap();
        let page = browser
            .post("/sign-in", &[("_csrf", &token), ("rootKey", "unkey_wrong")])
            .await;
        assert_eq!(page.status, 401, "attempt {attempt}: {}", page.body);
        assert!(page.body.contains("not a valid root key"), "{}", page.body);
    }
    let form = browser.get("/sign-in").await;
    let token = form.input("_csrf").unwrap();
    let page = browser
        .post("/sign-in", &[("_csrf", &token), ("rootKey", &app.root_key)])
        .await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(
        page.body.contains("Too many failed sign-ins"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn forms_without_the_session_token_change_nothing() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&app.root_key).await;

    let forged = browser.post("/apis", &[("name", "forged api")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong = browser
        .post(
            "/apis",
            &[("_csrf", "not-the-token"), ("name", "forged api")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let list = browser.get("/apis").await;
    assert!(!list.body.contains("forged api"), "{}", list.body);

    let created = browser
        .post(
            "/apis",
            &[("_csrf", &token), ("name", "made in the dashboard")],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let api_id = created
        .location()
        .trim_start_matches("/apis/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let read = app
        .post("/v2/apis.getApi", json!({ "apiId": api_id }))
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["data"]["name"], "made in the dashboard");

    // The audit log names the root key that signed in, as for an API call.
    let logs = app
        .post("/v2/audit.getLogs", json!({ "events": ["api.create"] }))
        .await;
    let event = &logs.body["data"][0];
    assert_eq!(event["actor"]["id"], app.root_key_id.as_str());

    // Bad input is shown in place with the API's own message, and nothing is created.
    let short = browser
        .post("/apis", &[("_csrf", &token), ("name", "x")])
        .await;
    assert_eq!(short.status, 400, "{}", short.body);
    assert!(short.body.contains("role=\"alert\""), "{}", short.body);
}

#[tokio::test]
async fn a_session_ends_within_a_second_of_its_root_key_being_disabled_or_idle() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    browser.sign_in(&app.root_key).await;

    keyward::domain::admin::set_root_key_enabled(&app.store, app.now(), &app.root_key_id, false)
        .await
        .expect("disable");
    let started = std::time::Instant::now();
    eventually(Duration::from_secs(1), "the session ends", || {
        let mut browser = Browser {
            client: browser.client.clone(),
            base: browser.base.clone(),
            cookies: browser.cookies.clone(),
        };
        async move {
            let page = browser.get("/apis").await;
            if page.status == 303 && page.location().starts_with("/sign-in") {
                Ok(())
            } else {
                Err(format!("still {}", page.status))
            }
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));

    // Idle sessions end too.
    let (_, key) = app.root_key_with(&["api.*.read_api"]).await;
    let mut idle = Browser::new(&app.base_url);
    idle.sign_in(&key).await;
    app.clock.advance_ms(13 * 3_600_000);
    let page = idle.get("/apis").await;
    assert_eq!(page.status, 303);
}

#[tokio::test]
async fn the_dashboard_acts_with_exactly_the_root_keys_permissions() {
    let app = spawn_app().await;
    let api_id = create_api(&app, "read only api").await;
    let (_, key) = app
        .root_key_with(&[&format!("api.{api_id}.read_api")])
        .await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&key).await;
    let list = browser.get("/apis").await;
    assert!(list.body.contains("read only api"), "{}", list.body);
    assert!(
        !list.body.contains("Create API"),
        "the create form is hidden"
    );
    assert!(!list.body.contains("/audit"), "the audit log is hidden");

    // The server refuses what the page hides.
    let refused = browser
        .post("/apis", &[("_csrf", &token), ("name", "not allowed")])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("api.*.create_api"),
        "{}",
        refused.body
    );
    assert_eq!(browser.get("/root-keys").await.status, 403);
    let audit = browser.get("/audit").await;
    assert_eq!(audit.status, 403, "{}", audit.body);

    let page = browser.get(&format!("/apis/{api_id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Create key"));
    assert!(!page.body.contains("Delete this API"));
    let delete = browser
        .post(&format!("/apis/{api_id}/delete"), &[("_csrf", &token)])
        .await;
    assert_eq!(delete.status, 403);
    let still = app
        .post("/v2/apis.getApi", json!({ "apiId": api_id }))
        .await;
    assert_eq!(still.status, 200);
    // Settings need update_api: refused with 403, and delete protection stays off.
    let settings = browser
        .post(
            &format!("/apis/{api_id}/settings"),
            &[("_csrf", &token), ("deleteProtection", "on")],
        )
        .await;
    assert_eq!(settings.status, 403, "{}", settings.body);
    assert!(settings.body.contains("update_api"), "{}", settings.body);

    // Another API of the workspace it may not read is not found.
    let other = create_api(&app, "hidden api").await;
    assert!(!browser.get("/apis").await.body.contains("hidden api"));
    assert_eq!(browser.get(&format!("/apis/{other}")).await.status, 404);

    // The refused settings changed nothing: the API is still deletable.
    let deleted = app
        .post("/v2/apis.deleteApi", json!({ "apiId": api_id }))
        .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
}

#[tokio::test]
async fn a_key_is_created_shown_once_searched_edited_and_deleted() {
    let app = spawn_app().await;
    let api_id = create_api(&app, "customers").await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&app.root_key).await;

    let created = browser
        .post(
            &format!("/apis/{api_id}/keys/new"),
            &[
                ("_csrf", &token),
                ("name", "acme production"),
                ("prefix", "acme"),
                ("externalId", "customer_42"),
                ("enabled", "on"),
                ("remaining", "100"),
                ("refillInterval", "daily"),
                ("refillAmount", "100"),
                ("rl0-name", "requests"),
                ("rl0-limit", "10"),
                ("rl0-duration", "60000"),
                ("rl0-auto", "on"),
                ("permissions", "documents.read, documents.write"),
                ("meta", "{\"plan\": \"pro\"}"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let key = created
        .body
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the new key on the page")
        .to_string();
    assert!(key.starts_with("acme_"), "{key}");
    let verified = app
        .verify(json!({ "key": key, "permissions": "documents.read" }))
        .await;
    assert_eq!(
        verified.body["data"]["code"], "VALID",
        "{:?}",
        verified.body
    );
    assert_eq!(verified.body["data"]["credits"], 99);
    let key_id = verified.body["data"]["keyId"].as_str().unwrap().to_string();

    // The key page never shows the key again.
    let page = browser.get(&format!("/keys/{key_id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("acme production"));
    assert!(!page.body.contains(&key));

    // Search: by name prefix, by start, by key id and by external id.
    for term in ["acme prod", &key[..8], &key_id, "customer_42"] {
        let found = browser
            .get(&format!("/apis/{api_id}?q={}", urlencode(term)))
            .await;
        assert_eq!(found.status, 200);
        assert!(
            found.body.contains(&key_id),
            "search '{term}': {}",
            found.body
        );
    }
    let none = browser.get(&format!("/apis/{api_id}?q=zzz")).await;
    assert!(none.body.contains("No key matches"));

    // Edit: a bad meta is refused in place and nothing changes.
    let bad = browser
        .post(
            &format!("/keys/{key_id}/update"),
            &[
                ("_csrf", &token),
                ("name", "renamed"),
                ("enabled", "on"),
                ("meta", "{not json"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("meta: not valid JSON"), "{}", bad.body);
    let read = app
        .post("/v2/keys.getKey", json!({ "keyId": key_id }))
        .await;
    assert_eq!(read.body["data"]["name"], "acme production");

    let disabled = browser
        .post(
            &format!("/keys/{key_id}/enabled"),
            &[("_csrf", &token), ("enabled", "false")],
        )
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    let verified = app.verify(json!({ "key": key })).await;
    assert_eq!(verified.body["data"]["code"], "DISABLED");

    let credits = browser
        .post(
            &format!("/keys/{key_id}/credits"),
            &[("_csrf", &token), ("operation", "set"), ("value", "5")],
        )
        .await;
    assert_eq!(credits.status, 303, "{}", credits.body);
    let read = app
        .post("/v2/keys.getKey", json!({ "keyId": key_id }))
        .await;
    assert_eq!(read.body["data"]["credits"]["remaining"], 5);

    let deleted = browser
        .post(&format!("/keys/{key_id}/delete"), &[("_csrf", &token)])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(
        deleted.location(),
        format!("/apis/{api_id}?done=key-deleted")
    );
    let verified = app.verify(json!({ "key": key })).await;
    assert_eq!(verified.body["data"]["code"], "NOT_FOUND");
}

pub(crate) fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("q", text)])
        .unwrap()
        .trim_start_matches("q=")
        .to_string()
}

#[tokio::test]
async fn delete_protection_set_in_the_dashboard_holds() {
    let app = spawn_app().await;
    let api_id = create_api(&app, "protected").await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&app.root_key).await;
    let saved = browser
        .post(
            &format!("/apis/{api_id}/settings"),
            &[
                ("_csrf", &token),
                ("deleteProtection", "on"),
                ("ipWhitelist", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let deleted = app
        .post("/v2/apis.deleteApi", json!({ "apiId": api_id }))
        .await;
    assert_eq!(deleted.status, 412, "{:?}", deleted.body);

    let bad = browser
        .post(
            &format!("/apis/{api_id}/settings"),
            &[("_csrf", &token), ("ipWhitelist", "10.0.0.1\nnot-an-ip")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("not-an-ip"), "{}", bad.body);
    // Nothing of the refused form was applied: protection is still on.
    let deleted = app
        .post("/v2/apis.deleteApi", json!({ "apiId": api_id }))
        .await;
    assert_eq!(deleted.status, 412);
}

#[tokio::test]
async fn audit_and_root_key_pages_show_the_workspace_only() {
    let app = spawn_app().await;
    create_api(&app, "audited").await;
    let mut browser = Browser::new(&app.base_url);
    browser.sign_in(&app.root_key).await;
    let audit = browser.get("/audit").await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(audit.body.contains("api.create"), "{}", audit.body);
    let filtered = browser.get("/audit?event=key.create").await;
    assert!(
        !filtered.body.contains("api.create</td>"),
        "{}",
        filtered.body
    );
    let bad = browser.get("/audit?since=yesterday").await;
    assert_eq!(bad.status, 400);

    let roots = browser.get("/root-keys").await;
    assert_eq!(roots.status, 200);
    assert!(roots.body.contains(&app.root_key_id));
    assert!(!roots.body.contains(&app.root_key));
    // Another workspace's root key is not listed.
    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let foreign = keyward::domain::admin::create_root_key(
        &app.store,
        app.now(),
        &other.id,
        Some("foreign"),
        &[],
        None,
    )
    .await
    .unwrap();
    let roots = browser.get("/root-keys").await;
    assert!(!roots.body.contains(&foreign.record.id));
}

#[tokio::test]
async fn dashboard_off_serves_nothing_at_the_root() {
    let served = ServeCommand::new()
        .serve(&["--dashboard", "off"])
        .start()
        .await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let answer = client
        .get(format!("{}/sign-in", served.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let answer = client
        .get(format!("{}/", served.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
}
