//! The HTTP routes of `faultline serve` (axum):
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the runs, newest first; `?name=` and `?verdict=` filter |
//! | `GET /runs/{test}/{start}/` | a run: summary, report.html in a frame, files |
//! | `GET /runs/{test}/{start}/files/{path}` | one file of the run (`?download=1`: as an attachment) |
//! | `GET /runs/{test}/{start}/download.tar.gz` | the whole run folder |
//! | `GET /runs.json` | the list as JSON |
//! | `GET /compare` | the comparison table; `?db=`, `?workload=`, `?nemesis=`, `?split_by=` (comma-separated) |
//!
//! Every path is checked by [`super::safe::resolve`]: nothing outside the
//! results directory is ever read.

use super::pages::{self, FileEntry, Filters};
use super::runs::{self, RunSummary};
use super::safe::{resolve, Refusal};
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What the handlers share.
struct AppState {
    /// The results directory, canonical.
    root: PathBuf,
    /// Summaries by run folder, with the modification times they were made
    /// from: a summary is recomputed only when its files change.
    cache: Mutex<HashMap<PathBuf, (Stamp, RunSummary)>>,
}

/// Modification times and sizes of the files a summary reads.
type Stamp = [(Option<SystemTime>, u64); 3];

fn stamp(dir: &Path) -> Stamp {
    let one = |name: &str| match std::fs::metadata(dir.join(name)) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [
        one(crate::store::TEST_JSON),
        one(crate::store::RESULTS_JSON),
        one(crate::store::HISTORY_JSONL),
    ]
}

impl AppState {
    /// Every run, newest first, summarized (from the cache when unchanged).
    fn runs(&self) -> std::io::Result<Vec<RunSummary>> {
        let dirs = runs::run_dirs(&self.root)?;
        let mut out = Vec::with_capacity(dirs.len());
        for (dir, test, start) in dirs {
            out.push(self.summary(&dir, &test, &start));
        }
        runs::sort_newest_first(&mut out);
        Ok(out)
    }

    fn summary(&self, dir: &Path, test: &str, start: &str) -> RunSummary {
        let st = stamp(dir);
        if let Ok(c) = self.cache.lock() {
            if let Some((s, r)) = c.get(dir) {
                if *s == st && r.has_report == dir.join("report.html").is_file() {
                    return r.clone();
                }
            }
        }
        let r = runs::summarize(dir, test, start);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(dir.to_path_buf(), (st, r.clone()));
        }
        r
    }
}

/// The application over the results directory `root`.
pub fn router(root: &Path) -> std::io::Result<Router> {
    let root = std::fs::canonicalize(root).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("results directory {}: {e}", root.display()),
        )
    })?;
    if !root.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    let state = Arc::new(AppState {
        root,
        cache: Mutex::new(HashMap::new()),
    });
    Ok(Router::new()
        .route("/", get(index))
        .route("/runs.json", get(runs_json))
        .route("/compare", get(compare))
        // Browsers ask for it on every page; an empty answer keeps their
        // consoles free of 404 errors.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/runs/{test}/{start}", get(run_redirect))
        .route("/runs/{test}/{start}/", get(run_page))
        .route("/runs/{test}/{start}/download.tar.gz", get(download))
        .route("/runs/{test}/{start}/files/{*path}", get(file))
        .fallback(not_found)
        .with_state(state))
}

type Shared = State<Arc<AppState>>;

fn html_error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("error");
    (status, Html(pages::error_page(title, message))).into_response()
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::BadPath(m) => html_error(StatusCode::BAD_REQUEST, &m),
        Refusal::NotFound => html_error(StatusCode::NOT_FOUND, "no such run or file"),
    }
}

async fn not_found() -> Response {
    html_error(StatusCode::NOT_FOUND, "no such page")
}

async fn index(State(s): Shared, Query(f): Query<Filters>) -> Response {
    let root = s.root.display().to_string();
    match tokio::task::spawn_blocking(move || s.runs()).await {
        Ok(Ok(runs)) => Html(pages::index(&runs, &f, &root)).into_response(),
        Ok(Err(e)) => html_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot list {root}: {e}"),
        ),
        Err(e) => html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn runs_json(State(s): Shared, Query(f): Query<Filters>) -> Response {
    let runs = match tokio::task::spawn_blocking(move || s.runs()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let list: Vec<serde_json::Value> = runs
        .iter()
        .filter(|r| f.keep(r))
        .map(runs::to_json)
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(list).to_string(),
    )
        .into_response()
}

/// The run folder named by a URL, canonical, with its real test and start
/// names (a `latest` link resolves to the run it points at).
fn run_dir(s: &AppState, test: &str, start: &str) -> Result<(PathBuf, String, String), Refusal> {
    let dir = resolve(&s.root, &format!("{test}/{start}"))?;
    let rel = dir.strip_prefix(&s.root).unwrap_or(&dir).to_path_buf();
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if !dir.is_dir() || parts.len() != 2 {
        return Err(Refusal::NotFound);
    }
    Ok((dir, parts[0].clone(), parts[1].clone()))
}

async fn run_redirect(UrlPath((test, start)): UrlPath<(String, String)>) -> Response {
    Redirect::permanent(&format!(
        "/runs/{}/{}/",
        pages::url_part(&test),
        pages::url_part(&start)
    ))
    .into_response()
}

async fn run_page(State(s): Shared, UrlPath((test, start)): UrlPath<(String, String)>) -> Response {
    let task = tokio::task::spawn_blocking(move || {
        let (dir, test, start) = match run_dir(&s, &test, &start) {
            Ok(x) => x,
            Err(r) => return refused(r),
        };
        let summary = s.summary(&dir, &test, &start);
        let files = list_files(&s.root, &dir);
        Html(pages::run_page(&summary, &files)).into_response()
    });
    match task.await {
        Ok(r) => r,
        Err(e) => html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Every regular file below `dir` (following links that stay inside
/// `root`), relative and sorted, at most 10,000.
fn list_files(root: &Path, dir: &Path) -> Vec<FileEntry> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((d, prefix, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let Ok(real) = std::fs::canonicalize(e.path()) else {
                continue;
            };
            if !real.starts_with(root) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&real) else {
                continue;
            };
            if meta.is_dir() && depth < 8 && real.starts_with(dir) {
                stack.push((real, format!("{rel}/"), depth + 1));
            } else if meta.is_file() && out.len() < 10_000 {
                out.push(FileEntry {
                    rel,
                    size: meta.len(),
                });
            }
        }
    }
    out.sort_by(|a, b| {
        let depth = |f: &FileEntry| f.rel.matches('/').count();
        depth(a).cmp(&depth(b)).then_with(|| a.rel.cmp(&b.rel))
    });
    out
}

#[derive(serde::Deserialize)]
struct FileQuery {
    #[serde(default)]
    download: Option<String>,
}

/// The content type for viewing a file in the browser: text for the plain
/// text formats a run holds (jsonl, logs, dot, edn), whatever their
/// extension; a guess from the extension otherwise.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "xml" => "application/xml",
        "gz" | "tgz" => "application/gzip",
        "jsonl" | "log" | "txt" | "dot" | "edn" | "md" | "toml" | "csv" | "tsv" | "out" | "err"
        | "" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn file(
    State(s): Shared,
    UrlPath((test, start, path)): UrlPath<(String, String, String)>,
    Query(q): Query<FileQuery>,
    req: Request,
) -> Response {
    let found = run_dir(&s, &test, &start)
        .and_then(|(dir, _, _)| Ok((dir, resolve(&s.root, &format!("{test}/{start}/{path}"))?)));
    let (dir, real) = match found {
        Ok(x) => x,
        Err(r) => return refused(r),
    };
    if !real.starts_with(&dir) || !real.is_file() {
        return refused(Refusal::NotFound);
    }
    let ctype = content_type(&real);
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let served = tower::ServiceExt::oneshot(tower_http::services::ServeFile::new(&real), req).await;
    let mut resp = match served {
        Ok(r) => r.map(Body::new),
        Err(e) => return html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if q.download.is_some() {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

async fn download(State(s): Shared, UrlPath((test, start)): UrlPath<(String, String)>) -> Response {
    let task = tokio::task::spawn_blocking(move || {
        let (dir, test, start) = match run_dir(&s, &test, &start) {
            Ok(x) => x,
            Err(r) => return refused(r),
        };
        let prefix = format!("{test}-{start}");
        let disposition = format!("attachment; filename=\"{prefix}.tar.gz\"");
        (
            [
                (header::CONTENT_TYPE, "application/gzip".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            super::tarball_body(dir, prefix),
        )
            .into_response()
    });
    match task.await {
        Ok(r) => r,
        Err(e) => html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct CompareQuery {
    #[serde(default)]
    db: String,
    #[serde(default)]
    workload: String,
    #[serde(default)]
    nemesis: String,
    #[serde(default)]
    split_by: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

async fn compare(State(s): Shared, Query(q): Query<CompareQuery>) -> Response {
    // The runs, and the refusals `faultline compare --run` recorded.
    let read =
        move || Ok::<_, std::io::Error>((s.runs()?, super::compare::read_refusals(&s.root)?));
    let (runs, refusals) = match tokio::task::spawn_blocking(read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => return html_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let sel = super::compare::Selection {
        dbs: split_list(&q.db),
        workloads: split_list(&q.workload),
        nemeses: split_list(&q.nemesis),
        split_by: split_list(&q.split_by),
        ..Default::default()
    };
    let rows = super::compare::gather(&runs, &refusals, &sel);
    let table = super::compare::html_table(&rows, &super::compare::Links::Server(String::new()));
    Html(pages::page("compare", &table)).into_response()
}
