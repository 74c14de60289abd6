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

/// One setting of the file as the form shows it.
struct FormRow {
    path: String,
    label: String,
    /// "integer", "number", "yesno", "text", "long", "list"
    kind: &'static str,
    value: String,
    error: Option<String>,
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
    /// The next version as a form, group by group: (title, settings).
    form: Vec<(&'static str, Vec<FormRow>)>,
    /// The file was edited as text (open that part of the page).
    file_mode: bool,
}

/// The form of a file: its settings grouped; a refused form's answers and
/// errors shown where they were typed.
fn form_rows(
    text: &str,
    kept: Option<(&crate::auth::Posted, &[domain::FieldError])>,
) -> Vec<(&'static str, Vec<FormRow>)> {
    use domain::protocols::form::{fields, Kind};
    let mut groups: Vec<(&'static str, Vec<FormRow>)> = vec![];
    for f in fields(text) {
        let name = format!("field.{}", f.path);
        let (value, error) = match kept {
            Some((posted, errors)) => (
                match f.kind {
                    Kind::YesNo => posted.get(&name).unwrap_or_else(|| "false".into()),
                    _ => posted.get(&name).unwrap_or(f.value.clone()),
                },
                errors
                    .iter()
                    .find(|e| e.field == name)
                    .map(|e| e.message.clone()),
            ),
            None => (f.value.clone(), None),
        };
        let kind = match f.kind {
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::YesNo => "yesno",
            Kind::Text if f.value.chars().count() > 60 => "long",
            Kind::Text => "text",
            Kind::List => "list",
        };
        let row = FormRow {
            path: f.path,
            label: f.label,
            kind,
            value,
            error,
        };
        match groups.iter_mut().find(|g| g.0 == f.section) {
            Some(g) => g.1.push(row),
            None => groups.push((f.section, vec![row])),
        }
    }
    groups
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

/// What the page shows besides the protocol's versions: the file being
/// written, an error or a checked proposal, a flash, and a refused form.
#[derive(Default)]
struct Shown<'a> {
    text: Option<String>,
    error: Option<String>,
    preview: Option<(String, Vec<(&'static str, String)>)>,
    flash: Option<String>,
    kept: Option<(&'a crate::auth::Posted, &'a [domain::FieldError])>,
}

async fn view(state: &AppState, c: &Caller, id: Option<String>, shown: Shown<'_>) -> PageResult {
    let Shown {
        text,
        error,
        preview,
        flash,
        kept,
    } = shown;
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
    let file_mode = kept.is_none() && error.is_some();
    let text = text.unwrap_or(draft);
    render(&ProtocolsPage {
        layout: Layout::new(c, "Protocols", "clinics").with_flash(flash),
        tabs: all
            .iter()
            .map(|p| (p.id.clone(), p.name.clone(), p.id == id))
            .collect(),
        form: form_rows(&text, kept),
        file_mode,
        text,
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
    view(
        &state,
        &c,
        q.protocol,
        Shown {
            flash,
            ..Default::default()
        },
    )
    .await
}

async fn submit(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let mut text = f.form.get("text").unwrap_or_default();
    let id = f.form.get("protocol");
    // The form's answers are written into the file it was made from; what
    // cannot be read is named where it was typed, the rest kept.
    let from_form = f.form.get("mode").as_deref() == Some("form");
    if from_form && f.form.get("action").as_deref() != Some("approve") {
        match domain::protocols::form::apply(&text, |p| f.form.get(&format!("field.{p}"))) {
            Ok(t) => text = t,
            Err(errors) => {
                let msg = errors
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                let shown = Shown {
                    text: Some(text),
                    error: Some(msg),
                    kept: Some((&f.form, &errors)),
                    ..Default::default()
                };
                return view(&state, c, id, shown).await;
            }
        }
    }
    let kept: Option<(&crate::auth::Posted, &[domain::FieldError])> =
        from_form.then_some((&f.form, &[]));
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
                let shown = Shown {
                    error: Some(msg),
                    ..Default::default()
                };
                view(&state, c, Some(pid), shown).await
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
            Err(e) => return refused(&state, c, id, text, kept.map(|k| k.0), e).await,
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
            let shown = Shown {
                text: Some(text),
                preview: Some((title, k.diff)),
                ..Default::default()
            };
            view(&state, c, id, shown).await
        }
        Err(e) => refused(&state, c, id, text, kept.map(|k| k.0), e).await,
    }
}

/// The page again after a refused check or save: the reason, the file as
/// sent, and (from the form) each problem at its field.
async fn refused(
    state: &AppState,
    c: &Caller,
    id: Option<String>,
    text: String,
    form: Option<&crate::auth::Posted>,
    e: crate::error::Error,
) -> PageResult {
    let errors = field_errors(&e);
    let msg = fixable(e)?;
    let shown = Shown {
        text: Some(text),
        error: Some(msg),
        kept: form.map(|p| (p, &errors[..])),
        ..Default::default()
    };
    view(state, c, id, shown).await
}

/// A check's problems as the form's fields name them (`dose.min` is the
/// field `field.dose.min`).
fn field_errors(e: &crate::error::Error) -> Vec<domain::FieldError> {
    match e {
        crate::error::Error::Invalid(v) => v
            .iter()
            .map(|x| domain::FieldError::new(format!("field.{}", x.field), x.message.clone()))
            .collect(),
        _ => vec![],
    }
}
