//! Helpers: a spawned emulator plus an HTTP client, and the console steps a creator would take.

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use zoho_emulator::{spawn, EmulatorConfig, RunningEmulator};

/// The product's scope from the setup guide.
pub const PRODUCT_SCOPE: &str = "ZohoCRM.modules.ALL,ZohoCRM.org.READ";

/// A running emulator and a client for it.
pub struct Emu {
    /// The emulator.
    pub emu: RunningEmulator,
    /// HTTP client.
    pub http: Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

/// A self client's credentials and the tokens from its first code exchange.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub secret: String,
    /// Refresh token.
    pub refresh: String,
    /// Access token.
    pub access: String,
    /// `api_domain` from the token answer.
    pub api: String,
}

impl Emu {
    /// Spawns an emulator with `config`.
    pub async fn start(config: EmulatorConfig) -> Emu {
        let emu = spawn(config).await.expect("emulator starts");
        let base = emu.base_url();
        Emu {
            emu,
            http: Client::new(),
            base,
        }
    }

    /// Spawns a small emulator (`contacts` contacts, 20 leads).
    pub async fn small(contacts: usize) -> Emu {
        Emu::start(EmulatorConfig {
            contacts,
            leads: 20,
            ..Default::default()
        })
        .await
    }

    /// POSTs JSON to a console path, returning status and body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("console call");
        status_json(resp).await
    }

    /// GETs a console path.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("console call");
        status_json(resp).await
    }

    /// Sets knobs.
    pub async fn knobs(&self, patch: Value) {
        let resp = self
            .http
            .put(format!("{}/__emulator/knobs", self.base))
            .json(&patch)
            .send()
            .await
            .expect("knobs");
        assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
    }

    /// Moves the emulator clock forward.
    pub async fn advance(&self, secs: u64) {
        let (status, _) = self
            .post("/__emulator/clock", json!({ "advance_secs": secs }))
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    /// Counters.
    pub async fn stats(&self) -> Value {
        self.get("/__emulator/stats").await.1
    }

    /// Creates a self client (optionally for an org / in a DC); returns `(id, secret)`.
    pub async fn self_client(&self, body: Value) -> (String, String) {
        let (status, v) = self.post("/__emulator/self-clients", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (str_of(&v["client_id"]), str_of(&v["client_secret"]))
    }

    /// Generates a 10-minute grant code.
    pub async fn code(&self, client_id: &str, scope: &str) -> String {
        let (status, v) = self
            .post(
                "/__emulator/grant-codes",
                json!({"client_id": client_id, "scope": scope, "duration_minutes": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        str_of(&v["code"])
    }

    /// POSTs form params to `{accounts}/oauth/v2/token`.
    pub async fn token_call(&self, accounts: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{accounts}/oauth/v2/token"))
            .form(form)
            .send()
            .await
            .expect("token call");
        status_json(resp).await
    }

    /// Exchanges a code at the default accounts server.
    pub async fn exchange(&self, client_id: &str, secret: &str, code: &str) -> (StatusCode, Value) {
        self.token_call(
            &self.base,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("code", code),
            ],
        )
        .await
    }

    /// Refreshes at the default accounts server.
    pub async fn refresh(&self, t: &Tokens) -> (StatusCode, Value) {
        self.token_call(
            &self.base,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &t.client_id),
                ("client_secret", &t.secret),
                ("refresh_token", &t.refresh),
            ],
        )
        .await
    }

    /// A self client of the default org with tokens for `scope`.
    pub async fn tokens(&self, scope: &str) -> Tokens {
        self.tokens_for(json!({}), scope).await
    }

    /// A self client created with `client_body` with tokens for `scope`.
    pub async fn tokens_for(&self, client_body: Value, scope: &str) -> Tokens {
        let dc = client_body["data_center"].as_str().map(str::to_lowercase);
        let (client_id, secret) = self.self_client(client_body).await;
        let code = self.code(&client_id, scope).await;
        let accounts = match &dc {
            Some(dc) => format!("{}/dc/{dc}", self.base),
            None => self.base.clone(),
        };
        let (status, v) = self
            .token_call(
                &accounts,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("code", &code),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(v.get("error").is_none(), "{v}");
        Tokens {
            client_id,
            secret,
            refresh: str_of(&v["refresh_token"]),
            access: str_of(&v["access_token"]),
            api: str_of(&v["api_domain"]),
        }
    }

    /// GETs `{api}{path}` with a token and extra headers.
    pub async fn crm(
        &self,
        api: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.http.get(format!("{api}{path}"));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Zoho-oauthtoken {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("crm call")
    }

    /// GETs a CRM path with the tokens' API domain; returns status and JSON (Null when bodiless).
    pub async fn crm_json(&self, t: &Tokens, path: &str) -> (StatusCode, Value) {
        status_json(self.crm(&t.api, path, Some(&t.access), &[]).await).await
    }

    /// Every live record of a module of the default org, from the console.
    pub async fn all_records(&self, module: &str) -> Vec<Value> {
        let (status, v) = self.get(&format!("/__emulator/records/{module}")).await;
        assert_eq!(status, StatusCode::OK);
        v["records"].as_array().cloned().expect("records array")
    }
}

/// Status and JSON body (Null for an empty body), checking the JSON content type when there is one.
pub async fn status_json(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.bytes().await.expect("body");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    assert_eq!(
        content_type.as_deref(),
        Some("application/json;charset=UTF-8")
    );
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

/// A JSON string's text (panics with the value otherwise).
pub fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_string()
}

/// The CRM error envelope.
pub fn envelope(code: &str, message: &str, details: Value) -> Value {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}
