//! The admin's protocol pages: every protocol and its versions (shipped,
//! from the data folder, or added here), with what changed between them, and
//! a new version written or imported from a file, checked (every problem
//! named by its field, the changes shown) before it is saved.

use askama::Template;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use domain::auth::Permission;
use serde::Deserialize;

use super::schedule::fixable;
use super::{render, PageQuery, PageResult};
use crate::auth::{Caller, Staff, StaffForm};
use crate::protocols as uc;
use crate::views::Layout;
use crate::AppState;
use domain::time::format_in_zone;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/protocols", get(page).post(submit))
}

struct VersionRow {
    version: u32,
    name: String,
    hash: String,
    origin: String,
    diff: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "protocols.html")]
struct ProtocolsPage {
    layout: Layout,
    /// (id, name, current)
    tabs: Vec<(String, String, bool)>,
    id: String,
    text: String,
    error: Option<String>,
    /// A checked proposal: (title, lines changed) and whether it may be saved.
    preview: Option<(String, Vec<(&'static str, String)>)>,
    versions: Vec<VersionRow>,
}

#[derive(Deserialize, Default)]
struct Q {
    protocol: Option<String>,
    done: Option<String>,
}

/// The current version's text with the next version number, to edit.
fn next_draft(p: &domain::protocols::Protocol) -> String {
    let mut out = String::with_capacity(p.source.len());
    let mut bumped = false;
    for line in p.source.lines() {
        if !bumped && line.trim_start().starts_with("version") && line.contains('=') {
            out.push_str(&format!("version = {}", p.version + 1));
            bumped = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

async fn view(
    state: &AppState,
    c: &Caller,
    id: Option<String>,
    text: Option<String>,
    error: Option<String>,
    preview: Option<(String, Vec<(&'static str, String)>)>,
    flash: Option<String>,
) -> PageResult {
    let clinics = c.require_any(Permission::ClinicSettings)?;
    let set = state.protocols();
    let all = set.all_current();
    let id = id
        .filter(|i| set.current(i).is_some())
        .or_else(|| all.first().map(|p| p.id.clone()))
        .unwrap_or_default();
    let tz = match clinics.first() {
        Some(k) => state.store.clinic(*k).await?.settings.time_zone,
        None => "UTC".into(),
    };
    let added = uc::origins(state).await?;
    let versions = set.versions_of(&id);
    let rows = versions
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| VersionRow {
            version: p.version,
            name: p.name.clone(),
            hash: p.hash[..12].to_string(),
            origin: match added.get(&(p.id.clone(), p.version)) {
                Some((who, at)) => format!("added by {who}, {}", format_in_zone(*at, &tz)),
                None if domain::protocols::BUILTIN.iter().any(|(f, _)| *f == p.file) => {
                    "shipped with Stillwater".into()
                }
                None => format!("file {}", p.file),
            },
            diff: i
                .checked_sub(1)
                .and_then(|j| versions.get(j))
                .map(|prev| uc::line_diff(&prev.source, &p.source))
                .unwrap_or_default(),
        })
        .collect();
    let draft = set.current(&id).map(|p| next_draft(p)).unwrap_or_default();
    render(&ProtocolsPage {
        layout: Layout::new(c, "Protocols", "clinics").with_flash(flash),
        tabs: all
            .iter()
            .map(|p| (p.id.clone(), p.name.clone(), p.id == id))
            .collect(),
        text: text.unwrap_or(draft),
        id,
        error,
        preview,
        versions: rows,
    })
}

async fn page(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<Q>,
) -> PageResult {
    let flash = q
        .done
        .filter(|d| !d.is_empty())
        .map(|d| format!("Version {d} saved; new plans use it."));
    view(&state, &c, q.protocol, None, None, None, flash).await
}

async fn submit(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let text = f.form.get("text").unwrap_or_default();
    let id = f.form.get("protocol");
    let save = f.form.get("action").as_deref() == Some("save");
    if save {
        match uc::add(&state, c, &text).await {
            Ok(p) => {
                return Ok(super::see_other(&format!(
                    "/admin/protocols?protocol={}&done={}",
                    p.id, p.version
                )))
            }
            Err(e) => {
                let msg = fixable(e)?;
                return view(&state, c, id, Some(text), Some(msg), None, None).await;
            }
        }
    }
    match uc::check(&state, c, &text) {
        Ok(k) => {
            let title = match &k.previous {
                Some(prev) => format!(
                    "{} version {}: the changes from version {}",
                    k.protocol.id, k.protocol.version, prev.version
                ),
                None => format!(
                    "{} version {}: a new protocol",
                    k.protocol.id, k.protocol.version
                ),
            };
            let id = Some(k.protocol.id.clone());
            view(&state, c, id, Some(text), None, Some((title, k.diff)), None).await
        }
        Err(e) => {
            let msg = fixable(e)?;
            view(&state, c, id, Some(text), Some(msg), None, None).await
        }
    }
}
