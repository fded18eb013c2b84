//! `report` end to end: a local run with a failure and a retry, its page written from the
//! datastore, then opened in a real headless Chromium through chromedriver (Debian's, installed
//! by tests/testenv/install.sh): the page loads without a browser error and without one fetch,
//! shows every task and attempt with links between retries, and its screenshot is kept in
//! target/test-artifacts/.

mod common;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubestep-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port, in a process group of its own with the Chromium it starts:
/// dropped (a failed assertion included), the whole group is killed.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the group is chromedriver's own.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start chromedriver ({e}): tests/testenv/install.sh installs Debian's chromium and chromium-driver (scripts/test runs it)")
        });
    Driver { child, port }
}

/// Chromium, headless, logging every console message for [`BrowserLog`].
async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1300,1600"]}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{}", driver.port);
    // chromedriver takes a moment to listen.
    for _ in 0..100 {
        if let Ok(c) = ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("chromedriver at {url} did not start a Chromium session");
}

/// chromedriver's log of the page's console and load errors (`/se/log`, type `browser`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

fn report(dir: &Path, run_id: &str, page: &Path) -> String {
    let root = dir.join("store");
    let out = common::run(
        "failures",
        &[
            "report",
            run_id,
            "--output",
            page.to_str().unwrap(),
            "--datastore-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

#[tokio::test]
async fn a_runs_page_shows_every_task_and_its_retries_in_a_real_browser() {
    let dir = scratch("retry");
    let (root, id_file) = (dir.join("store"), dir.join("run-id"));
    // `flaky` fails once and is retried; `fragile` then fails for good.
    let flaky = format!("report-{}", std::process::id());
    let out = common::run(
        "failures",
        &[
            "run",
            "--local",
            "--datastore-root",
            root.to_str().unwrap(),
            "--run-id-file",
            id_file.to_str().unwrap(),
        ],
        &[("FLAKY_ID", &flaky), ("FAIL", "error")],
    );
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("kubestep-flaky-{flaky}")));
    assert_eq!(out.status.code(), Some(1));
    let run_id = std::fs::read_to_string(&id_file).unwrap();

    let page = dir.join("page.html");
    assert_eq!(report(&dir, &run_id, &page).trim(), page.to_str().unwrap());

    let driver = chromedriver();
    let c = browser(&driver).await;
    c.goto(&format!("file://{}", page.display())).await.unwrap();
    assert!(c.title().await.unwrap().contains(&run_id));

    // Every task, in the timeline and in the details; every attempt with its row.
    for (step, attempts) in [("start", 1), ("flaky", 2), ("fragile", 1)] {
        let task = format!("task-{step}-0");
        assert_eq!(
            count(&c, &format!("article.task#{task}")).await,
            1,
            "{step}"
        );
        assert_eq!(count(&c, &format!(".row[data-task='{task}']")).await, 1);
        assert_eq!(
            count(&c, &format!("#{task} tr.attempt")).await,
            attempts,
            "{step}"
        );
        assert!(count(&c, &format!(".row[data-task='{task}'] a.span")).await >= attempts);
    }
    assert_eq!(count(&c, "article.task").await, 3);
    assert_eq!(count(&c, "svg g.node").await, 3);
    assert_eq!(count(&c, "svg g.node.failed[data-step='fragile']").await, 1);
    // The failed attempt says why, and links to its retry, which links back.
    let failed = c
        .find(Locator::Css("#attempt-flaky-0-0"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(failed.contains("a transient failure"), "{failed}");
    c.find(Locator::Css(
        "#attempt-flaky-0-0 a[href='#attempt-flaky-0-1']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert_eq!(
        c.current_url().await.unwrap().fragment(),
        Some("attempt-flaky-0-1")
    );
    assert_eq!(
        count(&c, "#attempt-flaky-0-1 a[href='#attempt-flaky-0-0']").await,
        1
    );
    let cause = c.find(Locator::Css("header .cause")).await.unwrap();
    assert!(cause.text().await.unwrap().contains("no good: 4"));

    // Nothing fetched, nothing logged.
    let fetched = c
        .execute(
            "return performance.getEntriesByType('resource').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fetched, json!(0));
    let log = c.issue_cmd(BrowserLog).await.unwrap();
    let errors: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["level"] != "INFO" && e["level"] != "DEBUG")
        .collect();
    assert!(errors.is_empty(), "the browser logged: {errors:?}");

    let shot = c.screenshot().await.unwrap();
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("report-failure-and-retry.png"), &shot).unwrap();
    std::fs::copy(&page, artifacts.join("report-failure-and-retry.html")).unwrap();
    c.close().await.unwrap();
}

#[test]
fn a_run_that_is_not_there_is_named() {
    let dir = scratch("missing");
    let out = common::run(
        "failures",
        &[
            "report",
            "123",
            "--datastore-root",
            dir.join("store").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no run 123 of flow `failures` in this datastore"),
        "{stderr}"
    );
}

/// `show --graph` prints Mermaid that Mermaid itself draws: every flow shape, each step a node.
#[tokio::test]
async fn show_graph_is_a_flowchart_mermaid_draws() {
    let parts = tokio::task::spawn_blocking(kubestep_testenv::install)
        .await
        .unwrap()
        .expect("tests/testenv/install.sh installs Mermaid");
    let dir = scratch("mermaid");
    let page = dir.join("mermaid.html");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><script src=\"file://{}\"></script></head><body></body></html>",
            parts.mermaid.display()
        ),
    )
    .unwrap();
    let driver = chromedriver();
    let c = browser(&driver).await;
    c.goto(&format!("file://{}", page.display())).await.unwrap();
    for (example, args) in [
        ("basic", &["show", "--graph"][..]),
        (
            "flow_shapes",
            &["show", "--graph", "--with", "kubernetes"][..],
        ),
    ] {
        let out = common::run(example, args, &[]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let drawn = c
            .execute_async(
                "const [text, done] = arguments;
                 mermaid.initialize({startOnLoad: false});
                 mermaid.render('graph' + Date.now(), text).then(r => done(r.svg), e => done('error: ' + e));",
                vec![json!(text)],
            )
            .await
            .unwrap();
        let svg = drawn.as_str().unwrap();
        assert!(
            svg.starts_with("<svg"),
            "{example}: Mermaid said {svg}\n{text}"
        );
        let steps: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("step_")?
                    .split_once('[')
                    .map(|(n, _)| n)
            })
            .collect();
        assert!(steps.len() >= 3, "{text}");
        for step in steps {
            assert!(
                svg.contains(&format!("{step}</b>")),
                "{example}: no node for `{step}` in {svg}"
            );
        }
    }
    c.close().await.unwrap();
}
