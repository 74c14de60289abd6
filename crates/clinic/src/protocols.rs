//! Protocol versions as data: written (or imported from a file) in the admin
//! pages or sent to the API by a clinic admin or a prescriber, validated like
//! a file in the data folder (every problem named by its field, the safety
//! floors of `domain::protocols::floors` included), compared line by line
//! with the version before, and stored as a draft of the author's
//! organisation. A draft is used by nobody until a prescriber marked as the
//! organisation's medical director approves it; then it joins the set every
//! request sees (swapped whole; other app instances pick it up on their next
//! worker round), for that organisation only. Records keep the version they
//! were made under.

use std::sync::{Arc, RwLock};

use domain::audit::Action;
use domain::auth::Permission;
use domain::protocols::{Protocol, Protocols};
use domain::FieldError;
use store::protocols::NewProtocolVersion;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

/// The loaded protocol versions, replaced whole when one is added.
#[derive(Clone)]
pub struct ProtocolSet {
    /// The clinic's files from the data folder (the shipped ones are built in).
    files: Arc<Vec<(String, String)>>,
    /// The set, and how many database versions it holds.
    now: Arc<RwLock<(Arc<Protocols>, i64)>>,
}

impl ProtocolSet {
    pub fn new(p: Protocols, files: Vec<(String, String)>) -> ProtocolSet {
        ProtocolSet {
            files: Arc::new(files),
            now: Arc::new(RwLock::new((Arc::new(p), 0))),
        }
    }

    pub fn get(&self) -> Arc<Protocols> {
        match self.now.read() {
            Ok(g) => g.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    fn stored(&self) -> i64 {
        match self.now.read() {
            Ok(g) => g.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    fn set(&self, p: Protocols, stored: i64) {
        let mut g = match self.now.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = (Arc::new(p), stored);
    }
}

/// The file name a stored version is loaded under.
fn stored_name(id: &str, version: i64) -> String {
    format!("{id}-v{version} (added in Stillwater)")
}

/// Loads the shipped protocols, the clinic's files and every stored version.
/// A stored version that no longer loads (a later build tightened a rule)
/// is reported, not silently dropped.
pub async fn reload(state: &Clinic) -> Result<(), Error> {
    let rows = state.store.protocol_versions().await?;
    let approved: Vec<(String, String, String)> = rows
        .into_iter()
        .filter(|r| r.status == "approved")
        .map(|r| {
            (
                stored_name(&r.protocol_id, r.version),
                r.body,
                r.org_id.unwrap_or_default(),
            )
        })
        .collect();
    let n = approved.len() as i64;
    let p = Protocols::load_with_stored(state.protocol_set.files.as_ref(), &approved)
        .map_err(|e| Error::Internal(format!("stored protocol {}: {e}", e.file)))?;
    state.protocol_set.set(p, n);
    Ok(())
}

/// Reloads when another instance has added a version since the last load.
pub async fn refresh(state: &Clinic) -> Result<bool, Error> {
    let n = state.store.count_protocol_versions().await?;
    if n == state.protocol_set.stored() {
        return Ok(false);
    }
    reload(state).await?;
    Ok(true)
}

/// A proposed version checked as it would be stored: the file's rules, the
/// instruments it names, and its number after the current one.
pub struct Checked {
    pub protocol: Protocol,
    /// The version it follows, if any.
    pub previous: Option<Arc<Protocol>>,
    /// Lines removed ("-") and added ("+") against the previous version.
    pub diff: Vec<(&'static str, String)>,
}

/// Clinic admins and prescribers write drafts.
fn may_draft(c: &Caller) -> Result<(), Error> {
    if c.require_any(Permission::ClinicSettings).is_ok() {
        return Ok(());
    }
    c.require_any(Permission::DoseOrder).map(|_| ())
}

pub fn line_diff(old: &str, new: &str) -> Vec<(&'static str, String)> {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .filter_map(|c| match c.tag() {
            similar::ChangeTag::Delete => Some(("-", c.value().trim_end().to_string())),
            similar::ChangeTag::Insert => Some(("+", c.value().trim_end().to_string())),
            similar::ChangeTag::Equal => None,
        })
        .collect()
}

/// Validates a proposed version without storing it.
pub fn check(state: &Clinic, c: &Caller, text: &str) -> Result<Checked, Error> {
    may_draft(c)?;
    let text = text.replace("\r\n", "\n");
    if text.trim().is_empty() {
        return Err(Error::Invalid(vec![FieldError::new(
            "text",
            "paste or import the protocol file",
        )]));
    }
    if text.len() > 64 * 1024 {
        return Err(Error::Invalid(vec![FieldError::new(
            "text",
            "is longer than 64 KB; a protocol file is a few KB",
        )]));
    }
    let p = Protocol::parse("new version", &text).map_err(|e| Error::Invalid(e.errors))?;
    let mut errors = vec![];
    for (n, i) in p.pre_session_instruments.iter().enumerate() {
        if state.instruments.current(i).is_none() {
            errors.push(FieldError::new(
                format!("pre_session_instruments[{n}]"),
                format!("{i:?} is not an instrument loaded here"),
            ));
        }
    }
    let set = state.protocols();
    let previous = set.current_for(&c.org_id.to_string(), &p.id).cloned();
    // Numbers are never reused, whichever organisation took one.
    let highest = set.highest_version(&p.id).unwrap_or(0);
    if p.version <= highest {
        errors.push(FieldError::new(
            "version",
            format!(
                "{} is at version {highest}: a new version is {} or more (versions never change)",
                p.id,
                highest + 1
            ),
        ));
    }
    if let Some(prev) = &previous {
        if p.route != prev.route {
            errors.push(FieldError::new(
                "route",
                format!(
                    "{} is a {} protocol; a new route is a new protocol id",
                    p.id,
                    prev.route.label()
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let diff = previous
        .as_ref()
        .map(|prev| line_diff(&prev.source, &text))
        .unwrap_or_else(|| text.lines().map(|l| ("+", l.to_string())).collect());
    Ok(Checked {
        protocol: p,
        previous,
        diff,
    })
}

/// Validates and stores a new version as a draft of the caller's
/// organisation: nobody uses it until a medical director approves it.
pub async fn add(state: &Clinic, c: &Caller, text: &str) -> Result<Protocol, Error> {
    let checked = check(state, c, text)?;
    let p = &checked.protocol;
    let by = c.user_id().ok_or(Error::Forbidden)?;
    let mut ev = c.event(Action::ProtocolCreate);
    ev.org_id = Some(c.org_id.to_string());
    ev.object_type = Some("protocol".into());
    ev.object_id = Some(format!("{}@{}", p.id, p.version));
    ev.detail = Some(format!(
        "{} version {} ({})",
        p.name,
        p.version,
        &p.hash[..12]
    ));
    state
        .store
        .insert_protocol_version(
            &NewProtocolVersion {
                id: uuid::Uuid::now_v7().to_string(),
                protocol_id: p.id.clone(),
                version: i64::from(p.version),
                file_name: stored_name(&p.id, i64::from(p.version)),
                body: p.source.clone(),
                sha256: p.hash.clone(),
                created_by: by.to_string(),
                org_id: c.org_id.to_string(),
            },
            ev,
        )
        .await?;
    Ok(checked.protocol)
}

/// A prescriber marked as the organisation's medical director approves a
/// draft: from then on new plans of the organisation take it.
pub async fn approve(
    state: &Clinic,
    c: &Caller,
    id: &str,
    version: u32,
) -> Result<Arc<Protocol>, Error> {
    c.require_any(Permission::DoseOrder).map_err(|_| {
        Error::Conflict("only a prescriber marked as medical director approves a protocol".into())
    })?;
    let by = c.user_id().ok_or(Error::Forbidden)?;
    if !state.store.user_summary(by).await?.medical_director {
        return Err(Error::Conflict(
            "only a prescriber marked as medical director approves a protocol".into(),
        ));
    }
    let mut ev = c.event(Action::ProtocolApprove);
    ev.org_id = Some(c.org_id.to_string());
    ev.object_type = Some("protocol".into());
    ev.object_id = Some(format!("{id}@{version}"));
    state
        .store
        .approve_protocol_version(
            &c.org_id.to_string(),
            id,
            i64::from(version),
            &by.to_string(),
            ev,
        )
        .await?;
    reload(state).await?;
    state
        .protocols()
        .get(id, version)
        .cloned()
        .ok_or_else(|| Error::Internal("an approved protocol did not load".into()))
}

/// The organisation's drafts waiting for approval: (protocol, author, when).
pub async fn drafts(state: &Clinic, c: &Caller) -> Result<Vec<(Protocol, String, i64)>, Error> {
    may_draft(c)?;
    let org = c.org_id.to_string();
    let mut out = Vec::new();
    for r in state.store.protocol_versions().await? {
        if r.status != "draft" || r.org_id.as_deref() != Some(org.as_str()) {
            continue;
        }
        let p = Protocol::parse(&stored_name(&r.protocol_id, r.version), &r.body)
            .map_err(|e| Error::Internal(format!("a stored draft does not read back: {e}")))?;
        out.push((p, r.created_by, r.created_at));
    }
    Ok(out)
}

/// Who added each stored version and when, and who approved it:
/// (protocol id, version) to (author, instant, approver).
pub async fn origins(
    state: &Clinic,
) -> Result<std::collections::BTreeMap<(String, u32), (String, i64, Option<String>)>, Error> {
    Ok(state
        .store
        .protocol_versions()
        .await?
        .into_iter()
        .map(|r| {
            (
                (r.protocol_id, r.version as u32),
                (r.created_by, r.created_at, r.approved_by),
            )
        })
        .collect())
}

/// Whether the caller is a medical director (who approves protocol versions).
pub async fn is_medical_director(state: &Clinic, c: &Caller) -> Result<bool, Error> {
    let Some(u) = c.user_id() else {
        return Ok(false);
    };
    Ok(state.store.user_summary(u).await?.medical_director)
}
