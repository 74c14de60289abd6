//! Reading the audit trail, as use cases shared by the page and the API:
//! who did what to which record, filtered, newest first, limited to the
//! clinics the reader may audit. Reading it and exporting it are themselves
//! recorded, with the patients the reader was shown.

use std::collections::HashMap;

use domain::audit::{Action, AuditRecord};
use domain::auth::Permission;
use domain::ids::{PatientId, UserId};
use store::audit::AuditFilter;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

/// What to list. Times are microseconds since the epoch; `to` is exclusive.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub patient: Option<PatientId>,
    pub user: Option<UserId>,
    pub action: Option<Action>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only events older than this sequence number (the next page).
    pub before: Option<i64>,
    pub limit: i64,
    /// A filter the reader typed that names nothing (an unknown MRN): the
    /// listing is empty, and the reading is still recorded.
    pub nothing: bool,
}

/// A page of the audit trail, with the display names of the patients in it
/// that the reader may see (when asked for).
#[derive(Debug, Default)]
pub struct Listing {
    pub events: Vec<AuditRecord>,
    pub names: HashMap<String, String>,
}

async fn filter(c: &Clinic, caller: &Caller, q: &Query) -> Result<AuditFilter, Error> {
    let clinics = caller.require_any(Permission::AuditRead)?;
    // A user who is not one of this organisation's matches nothing.
    let user = match q.user {
        None => None,
        Some(u) => {
            let users = c.store.users_of_org(caller.org_id).await?;
            Some(
                users
                    .iter()
                    .find(|x| x.id == u)
                    .map(|x| x.id.to_string())
                    .unwrap_or_else(|| "-".into()),
            )
        }
    };
    Ok(AuditFilter {
        org_id: Some(caller.org_id.to_string()),
        patient_id: if q.nothing {
            Some("-".into())
        } else {
            q.patient.map(|p| p.to_string())
        },
        actor_user_id: user,
        action: q.action.map(|a| a.as_str().to_string()),
        from: q.from,
        to: q.to,
        clinics: clinics.iter().map(|k| k.to_string()).collect(),
        include_orgwide: true,
        before_seq: q.before,
        limit: q.limit,
    })
}

/// Lists events. With `names`, the patients in them whom the reader may see
/// are named, and the record of this reading names them (by id) too.
pub async fn list(
    c: &Clinic,
    caller: &Caller,
    q: &Query,
    names: bool,
    via: &str,
) -> Result<Listing, Error> {
    let f = filter(c, caller, q).await?;
    let events = c.store.audit_events(&f).await?;
    let mut named: HashMap<String, String> = HashMap::new();
    if names {
        let readable = caller.clinics_with(Permission::PatientRead);
        for e in &events {
            let Some(pid) = &e.patient_id else { continue };
            if named.contains_key(pid) {
                continue;
            }
            if let Ok(id) = pid.parse::<PatientId>() {
                if let Some(p) = c.store.patient(id, &readable).await? {
                    named.insert(
                        pid.clone(),
                        format!("{} ({})", p.details.display_name(), p.mrn),
                    );
                }
            }
        }
    }
    let mut ev = caller.event(Action::AuditRead);
    ev.object_type = Some("audit_log".into());
    ev.detail = Some(if names {
        let mut shown: Vec<&str> = named.keys().map(String::as_str).collect();
        shown.sort_unstable();
        format!(
            "{} event(s) listed; patients named: {}",
            events.len(),
            shown.join(",")
        )
    } else {
        format!("{} event(s) listed {via}", events.len())
    });
    c.store.audit(vec![ev]).await?;
    Ok(Listing {
        events,
        names: named,
    })
}

/// The staff of the caller's organisation, to filter by (for auditors, who
/// need not manage staff).
pub async fn actors(c: &Clinic, caller: &Caller) -> Result<Vec<(UserId, String)>, Error> {
    caller.require_any(Permission::AuditRead)?;
    Ok(c.store
        .users_of_org(caller.org_id)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect())
}

/// The one patient an exact MRN names among those the reader may see.
pub async fn patient_by_mrn(
    c: &Clinic,
    caller: &Caller,
    mrn: &str,
) -> Result<Option<PatientId>, Error> {
    caller.require_any(Permission::AuditRead)?;
    let found = c
        .store
        .search_patients(&caller.clinics_with(Permission::PatientRead), mrn, 2)
        .await?;
    Ok(match found.as_slice() {
        [one] if one.mrn.eq_ignore_ascii_case(mrn) => Some(one.id),
        _ => None,
    })
}

/// The filtered trail as CSV (newest first). The export itself is recorded.
pub async fn export_csv(c: &Clinic, caller: &Caller, q: &Query) -> Result<Vec<u8>, Error> {
    let f = filter(c, caller, q).await?;
    let events = c.store.audit_events(&f).await?;
    let mut ev = caller.event(Action::AuditExport);
    ev.object_type = Some("audit_log".into());
    ev.detail = Some(format!("{} event(s) exported as CSV", events.len()));
    c.store.audit(vec![ev]).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::Internal(e.to_string());
    w.write_record([
        "seq",
        "at_utc",
        "actor",
        "role",
        "clinic_id",
        "patient_id",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "source_ip",
        "request_id",
        "detail",
        "hash",
    ])
    .map_err(csv_err)?;
    for e in &events {
        w.write_record([
            e.seq.to_string(),
            domain::time::to_timestamp(e.at).to_string(),
            e.actor_label.clone(),
            e.actor_role.clone().unwrap_or_default(),
            e.clinic_id.clone().unwrap_or_default(),
            e.patient_id.clone().unwrap_or_default(),
            e.action.clone(),
            e.object_type.clone().unwrap_or_default(),
            e.object_id.clone().unwrap_or_default(),
            e.outcome.clone(),
            e.source_ip.clone().unwrap_or_default(),
            e.request_id.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
            e.hash.clone(),
        ])
        .map_err(csv_err)?;
    }
    w.into_inner().map_err(|e| Error::Internal(e.to_string()))
}

/// Who opened one patient's record: the chart's access tab (the newest 100,
/// at the clinic where the caller audits); the viewing is recorded.
pub async fn patient_access(
    c: &Clinic,
    caller: &Caller,
    clinic: domain::ids::ClinicId,
    patient: &str,
) -> Result<Vec<AuditRecord>, Error> {
    caller.require(Permission::AuditRead, clinic)?;
    let events = c
        .store
        .audit_events(&AuditFilter {
            patient_id: Some(patient.to_string()),
            clinics: vec![clinic.to_string()],
            limit: 100,
            ..Default::default()
        })
        .await?;
    let mut ev = caller.patient_event(Action::AuditRead, Permission::AuditRead, clinic, patient);
    ev.object_type = Some("audit_log".into());
    c.store.audit(vec![ev]).await?;
    Ok(events)
}
