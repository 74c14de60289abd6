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

use crate::auth::{Caller, Staff, StaffForm};
use crate::ui::fixable;
use crate::ui::Layout;
use crate::ui::{render, PageQuery, PageResult};
use crate::AppState;
use clinic::protocols as uc;
use domain::time::WallClock;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/protocols", get(page).post(submit))
}

struct DraftRow {
    id: String,
    version: u32,
    name: String,
    by: String,
    when: String,
    diff: Vec<(&'static str, String)>,
}

struct VersionRow {
    version: u32,
    name: String,
    hash: String,
    origin: String,
    diff: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "treatment/protocols.html")]
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
    /// Drafts waiting for the medical director.
    drafts: Vec<DraftRow>,
    /// The caller may approve drafts (a prescriber marked as medical director).
    can_approve: bool,
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
    let clinics = match c.require_any(Permission::ClinicSettings) {
        Ok(k) => k,
        Err(_) => c.require_any(Permission::DoseOrder)?,
    };
    let org = c.org_id.to_string();
    let set = state.protocols();
    let all = set.all_current_for(&org);
    let id = id
        .filter(|i| set.current_for(&org, i).is_some())
        .or_else(|| all.first().map(|p| p.id.clone()))
        .unwrap_or_default();
    let tz = match clinics.first() {
        Some(k) => clinic::settings::record(state, *k).await?.settings.clock(),
        None => WallClock::new("UTC", ""),
    };
    let added = uc::origins(state).await?;
    let versions: Vec<_> = set
        .versions_of(&id)
        .into_iter()
        .filter(|p| p.org.as_deref().is_none_or(|o| o == org))
        .collect();
    let rows = versions
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| VersionRow {
            version: p.version,
            name: p.name.clone(),
            hash: p.hash[..12].to_string(),
            origin: match added.get(&(p.id.clone(), p.version)) {
                Some((who, at, approver)) => format!(
                    "written by {who}, {}{}",
                    tz.stamp(*at),
                    approver
                        .as_ref()
                        .map(|a| format!("; approved by {a}"))
                        .unwrap_or_default()
                ),
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
    let waiting = uc::drafts(state, c).await?;
    // The next draft follows the highest number taken, drafts included.
    let highest = waiting
        .iter()
        .filter(|d| d.0.id == id)
        .map(|d| d.0.version)
        .chain(set.highest_version(&id))
        .max();
    let draft = set
        .current_for(&org, &id)
        .map(|p| {
            let mut p = p.as_ref().clone();
            p.version = highest.unwrap_or(p.version);
            next_draft(&p)
        })
        .unwrap_or_default();
    let drafts = waiting
        .into_iter()
        .map(|(p, by, at)| {
            let diff = set
                .current_for(&org, &p.id)
                .map(|prev| uc::line_diff(&prev.source, &p.source))
                .unwrap_or_default();
            DraftRow {
                id: p.id.clone(),
                version: p.version,
                name: p.name.clone(),
                by,
                when: tz.stamp(at),
                diff,
            }
        })
        .collect();
    let me = c.user_id();
    let can_approve = match me {
        Some(_) if c.require_any(Permission::DoseOrder).is_ok() => {
            clinic::protocols::is_medical_director(state, c).await?
        }
        _ => false,
    };
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
        drafts,
        can_approve,
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
        .map(|d| {
            if let Some(v) = d.strip_prefix("approved-") {
                format!("Version {v} approved; new plans use it.")
            } else {
                format!("Version {d} saved as a draft: the medical director approves it before any plan uses it.")
            }
        });
    view(&state, &c, q.protocol, None, None, None, flash).await
}

async fn submit(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let text = f.form.get("text").unwrap_or_default();
    let id = f.form.get("protocol");
    let save = f.form.get("action").as_deref() == Some("save");
    if f.form.get("action").as_deref() == Some("approve") {
        let version: u32 = f
            .form
            .get("version")
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let pid = f.form.get("protocol").unwrap_or_default();
        return match uc::approve(&state, c, &pid, version).await {
            Ok(p) => Ok(crate::ui::see_other(&format!(
                "/admin/protocols?protocol={}&done=approved-{}",
                p.id, p.version
            ))),
            Err(e) => {
                let msg = fixable(e)?;
                view(&state, c, Some(pid), None, Some(msg), None, None).await
            }
        };
    }
    if save {
        match uc::add(&state, c, &text).await {
            Ok(p) => {
                return Ok(crate::ui::see_other(&format!(
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
