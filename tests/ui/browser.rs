//! Headless Chromium driven over WebDriver: Debian's `chromium` and `chromedriver`, a chromedriver
//! started on a free port, a fresh profile, and the few verbs the guide's test needs (fill, click,
//! read, wait, screenshot).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use pledgesync_tests::{free_port, wait_until};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The desktop window; screenshots at 375 px use [`Browser::narrow`].
pub const DESKTOP: (u32, u32) = (1280, 900);
/// How long a step may wait for the page to show what it should.
pub const STEP: Duration = Duration::from_secs(15);

/// A chromedriver process and its process group (Chromium runs in it too), killed on drop.
struct Driver {
    child: std::process::Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group was made for chromedriver alone: this reaches it and the Chromium it started,
        // should the WebDriver session not have ended cleanly.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Driver,
    profile: PathBuf,
    artifacts: PathBuf,
}

/// Whether the browser test can run here: `Ok(None)` means skip (said loudly), which is allowed
/// only outside CI. With `CI` set, a missing browser is a failure.
fn browser_present() -> anyhow::Result<bool> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    let advice = "install them with `apt-get install -y --no-install-recommends chromium chromium-driver fonts-liberation`";
    anyhow::ensure!(
        !ci,
        "CI is set and {} missing: the browser tests cannot run; {advice}",
        missing.join(" and ")
    );
    eprintln!(
        "\n{}\nSKIPPED: the UI browser test needs {} ({advice}).\n{}\n",
        "!".repeat(78),
        missing.join(" and "),
        "!".repeat(78)
    );
    Ok(false)
}

/// `target/ui-artifacts`, next to the profile directory this test binary was built into.
pub fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is not inside target/<profile>/deps")?;
    let dir = target.join("ui-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` when the test must skip.
    pub async fn launch() -> anyhow::Result<Option<Browser>> {
        if !browser_present()? {
            return Ok(None);
        }
        let port = free_port()?;
        let artifacts = artifacts_dir()?;
        // A failure's screenshot belongs to the run that failed.
        let _ = std::fs::remove_file(artifacts.join("failure.png"));
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                artifacts.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("chromedriver did not start")?;
        let driver = Driver { child };
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_until("chromedriver to be ready", Duration::from_secs(15), || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let status: Value = http
                    .get(format!("{base}/status"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                status["value"]["ready"].as_bool().filter(|ready| *ready)
            }
        })
        .await?;
        let profile = std::env::temp_dir().join(format!(
            "pledgesync-ui-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile)?;
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // Without these Chromium dials out on its own; this closed network refuses it.
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    // Crashpad's handler leaves the process group: without it, killing the group
                    // reaches every Chromium process.
                    "--disable-crash-reporter",
                    "--disable-breakpad",
                    "--hide-scrollbars",
                    "--lang=en-GB",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&base)
            .await
            .context("chromedriver did not open a Chromium session")?;
        Ok(Some(Browser {
            client,
            driver,
            profile,
            artifacts,
        }))
    }

    /// Ends the session (Chromium exits), stops chromedriver and removes the profile.
    pub async fn close(self) {
        let Browser {
            client,
            driver,
            profile,
            ..
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
        let _ = std::fs::remove_dir_all(profile);
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The path (and query) of the page shown.
    pub async fn location(&self) -> anyhow::Result<String> {
        let url = self.client.current_url().await?;
        Ok(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// Runs a script in the page; `arguments[i]` are `args`.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// A property of the first element matching `css` (`value`, `disabled`, `textContent`…), or
    /// Null when nothing matches.
    pub async fn prop(&self, css: &str, name: &str) -> anyhow::Result<Value> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e[arguments[1]] : null;",
            vec![json!(css), json!(name)],
        )
        .await
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        let value = self
            .js("const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;", vec![json!(css), json!(name)])
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// The text of the first element matching `css` as a person reads it ("" if none or hidden).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let value = self
            .js("const e = document.querySelector(arguments[0]); return e && !e.closest('[hidden]') ? e.innerText : '';", vec![json!(css)])
            .await?;
        Ok(value.as_str().unwrap_or_default().trim().to_owned())
    }

    /// Replaces the content of an input with `value`, typed key by key.
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let input = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?;
        input.clear().await?;
        input.send_keys(value).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?;
        element
            .click()
            .await
            .with_context(|| format!("clicking {css}"))
    }

    /// Presses a key in the focused element (`fantoccini::key::Key` as a string).
    pub async fn press(&self, key: fantoccini::key::Key) -> anyhow::Result<()> {
        let focused = self.client.active_element().await?;
        focused.send_keys(&String::from(char::from(key))).await?;
        Ok(())
    }

    /// Waits until the text of `css` contains `needle`; returns the whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let waited = wait_until(&format!("{css} to say {needle:?}"), STEP, || async move {
            self.text(css)
                .await
                .ok()
                .filter(|text| text.contains(needle))
        })
        .await;
        match waited {
            Ok(text) => Ok(text),
            Err(error) => {
                let seen = self.text(css).await.unwrap_or_default();
                let at = self.location().await.unwrap_or_default();
                let _ = self.screenshot("failure").await;
                Err(error.context(format!("on {at}, {css} says {seen:?}")))
            }
        }
    }

    /// Waits until the page's path starts with `prefix`; returns the path.
    pub async fn wait_for_location(&self, prefix: &str) -> anyhow::Result<String> {
        self.wait_for_location_where(prefix, |at| at.starts_with(prefix))
            .await
    }

    /// Waits until the page's path satisfies `arrived` (`what` names it); returns the path.
    pub async fn wait_for_location_where(
        &self,
        what: &str,
        arrived: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let arrived = &arrived;
        let waited = wait_until(
            &format!("the browser to reach {what}"),
            STEP,
            || async move { self.location().await.ok().filter(|at| arrived(at)) },
        )
        .await;
        match waited {
            Ok(at) => Ok(at),
            Err(error) => {
                let at = self.location().await.unwrap_or_default();
                let alerts = self
                    .text("[role=alert]:not(:empty)")
                    .await
                    .unwrap_or_default();
                let _ = self.screenshot("failure").await;
                Err(error.context(format!("the page stayed on {at} (alert: {alerts:?})")))
            }
        }
    }

    /// The window's inner width as the page sees it.
    pub async fn inner_width(&self) -> anyhow::Result<u64> {
        self.js("return window.innerWidth;", vec![])
            .await?
            .as_u64()
            .context("innerWidth")
    }

    /// Sets the window to a phone's width (375 px) or back to the desktop.
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.client.set_window_size(width, height).await?;
        Ok(())
    }

    /// Saves a screenshot of the whole page (the window grown to its height for the shot) as
    /// `target/ui-artifacts/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let (width, height) = self.client.get_window_size().await?;
        let (width, height) = (u32::try_from(width)?, u32::try_from(height)?);
        // The window is taller than the page's viewport by whatever the browser draws around it.
        let sizes = self
            .js("return [Math.ceil(document.documentElement.scrollHeight), window.outerHeight - window.innerHeight];", vec![])
            .await?;
        let page = sizes[0].as_u64().unwrap_or(u64::from(height));
        let frame = sizes[1].as_u64().unwrap_or(0);
        let tall = u32::try_from((page + frame).clamp(u64::from(height), 5000)).unwrap_or(5000);
        self.client.set_window_size(width, tall).await?;
        // Two animation frames: the resized page is laid out and painted before the shot.
        self.client
            .execute_async(
                "const done = arguments[0]; window.scrollTo(0, 0); requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await?;
        let png = self.client.screenshot().await;
        self.client.set_window_size(width, height).await?;
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png?)?;
        Ok(path)
    }
}
