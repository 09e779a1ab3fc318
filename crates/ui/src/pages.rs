//! The pages: one layout (header with navigation and session, main landmark, footer) around each
//! page's body, plus the page's script. Pages are the same for everybody — they carry no data;
//! their script fetches it from the `/v1` API with the signed-in token.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Html;

const LAYOUT: &str = include_str!("../templates/layout.html");

/// A page of the setup guide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// Takes the API token and the account id.
    SignIn,
    /// The account's integrations.
    Integrations,
    /// Client ID, Client Secret, Refresh Token (grant code), data centre; the guide beside it.
    AddIntegration,
    /// Picks or creates the audience an integration feeds.
    MapAudience,
    /// Org, audience, schedule, runs, Sync Now with progress, re-authorisation.
    IntegrationDetail,
    /// Any other address under `/ui/`.
    NotFound,
}

/// The header's navigation: (label, href, the page it marks as current).
const NAV: [(&str, &str, Page); 2] = [
    ("Integrations", "/ui/", Page::Integrations),
    (
        "Add integration",
        "/ui/integrations/new",
        Page::AddIntegration,
    ),
];

impl Page {
    /// Every page, for tests that check them all.
    pub const ALL: [Page; 6] = [
        Page::SignIn,
        Page::Integrations,
        Page::AddIntegration,
        Page::MapAudience,
        Page::IntegrationDetail,
        Page::NotFound,
    ];

    /// The `<title>` (the layout appends the product name).
    pub fn title(self) -> &'static str {
        match self {
            Page::SignIn => "Sign in",
            Page::Integrations => "Zoho integrations",
            Page::AddIntegration => "Add a Zoho CRM integration",
            Page::MapAudience => "Map an audience",
            Page::IntegrationDetail => "Integration",
            Page::NotFound => "Page not found",
        }
    }

    /// A short name, set as `data-page` on `<body>` (tests and styles may key on it).
    pub fn slug(self) -> &'static str {
        match self {
            Page::SignIn => "sign-in",
            Page::Integrations => "integrations",
            Page::AddIntegration => "add-integration",
            Page::MapAudience => "map-audience",
            Page::IntegrationDetail => "integration-detail",
            Page::NotFound => "not-found",
        }
    }

    /// The page's body, inside `<main>`.
    pub fn body(self) -> &'static str {
        match self {
            Page::SignIn => include_str!("../templates/sign-in.html"),
            Page::Integrations => include_str!("../templates/integrations.html"),
            Page::AddIntegration => include_str!("../templates/add-integration.html"),
            Page::MapAudience => include_str!("../templates/map-audience.html"),
            Page::IntegrationDetail => include_str!("../templates/integration-detail.html"),
            Page::NotFound => include_str!("../templates/not-found.html"),
        }
    }

    /// The page's script under `/ui/assets/`. The 404 page loads the common module, which only
    /// shows the session in the header.
    pub fn script(self) -> &'static str {
        match self {
            Page::SignIn => "sign-in.js",
            Page::Integrations => "integrations.js",
            Page::AddIntegration => "add-integration.js",
            Page::MapAudience => "map-audience.js",
            Page::IntegrationDetail => "integration-detail.js",
            Page::NotFound => "common.js",
        }
    }

    /// The whole document.
    pub fn render(self) -> String {
        let nav: String = NAV
            .iter()
            .map(|(label, href, page)| {
                let current = if *page == self {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                format!("        <li><a href=\"{href}\"{current}>{label}</a></li>\n")
            })
            .collect();
        // `{{main}}` goes last: a page body never gets its own text mistaken for a placeholder.
        LAYOUT
            .replace("{{title}}", self.title())
            .replace("{{script}}", self.script())
            .replace("{{page}}", self.slug())
            .replace("{{nav}}\n", &nav)
            .replace("{{main}}", self.body())
    }
}

fn page(page: Page) -> Html<String> {
    Html(page.render())
}

/// `GET /ui/sign-in`.
pub async fn sign_in() -> Html<String> {
    page(Page::SignIn)
}

/// `GET /ui/`.
pub async fn integrations() -> Html<String> {
    page(Page::Integrations)
}

/// `GET /ui/integrations/new`.
pub async fn add_integration() -> Html<String> {
    page(Page::AddIntegration)
}

/// An integration id in the path: a UUID, or the address names no page.
fn is_id(raw: &str) -> bool {
    uuid::Uuid::try_parse(raw).is_ok()
}

/// `GET /ui/integrations/{id}`.
pub async fn integration_detail(Path(id): Path<String>) -> (StatusCode, Html<String>) {
    if is_id(&id) {
        (StatusCode::OK, page(Page::IntegrationDetail))
    } else {
        not_found().await
    }
}

/// `GET /ui/integrations/{id}/audience`.
pub async fn map_audience(Path(id): Path<String>) -> (StatusCode, Html<String>) {
    if is_id(&id) {
        (StatusCode::OK, page(Page::MapAudience))
    } else {
        not_found().await
    }
}

/// Any other address under `/ui/`.
pub async fn not_found() -> (StatusCode, Html<String>) {
    (StatusCode::NOT_FOUND, page(Page::NotFound))
}

#[cfg(test)]
mod tests;
