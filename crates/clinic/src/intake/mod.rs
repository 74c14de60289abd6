//! Before the first dose, as use cases: the two-part assessment (the
//! patient's part also through a single-use link), consent documents and
//! signatures (in the clinic or through a link, each with a PDF of what was
//! signed), withdrawal and witnessing, treatment plans behind the gate, and
//! the chart's one-line status. Every read and write is checked and audited.

pub mod eligibility;

use domain::assessment::{ClinicalPart, PatientPart};
use domain::audit::Action;
use domain::auth::Permission;
use domain::consent::{self, ConsentState, Document, SignInput};
use domain::ids::{ClinicId, PatientId};
use domain::plans::{EligibilityState, PlanInput};
use domain::protocols::Route;
use domain::FieldError;
use sha2::{Digest, Sha256};
use store::intake::{
    AssessmentPart, Consent, ConsentDocument, NewConsent, NewPatientLink, PatientLink, StoredPlan,
};
use store::patients::PatientRecord;

use crate::actor::RequestMeta;
use crate::actor::{random_token, secret_hash, Caller};
use crate::error::{stored, Error};
use crate::Clinic;

const HOUR: i64 = 3_600_000_000;

fn invalid(field: &str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(field, m)])
}

/// The patient's clinic, when the caller may act there with `perm`; a
/// patient out of reach is "not found" and the attempt is audited.
async fn patient_of(
    state: &Clinic,
    c: &Caller,
    perm: Permission,
    patient: PatientId,
    action: Action,
) -> Result<PatientRecord, Error> {
    let clinics = c.require_any(perm)?;
    match state.store.patient(patient, &clinics).await? {
        Some(p) => {
            c.require(perm, p.clinic_id)?;
            Ok(p)
        }
        None => {
            let mut ev = c.event(action);
            ev.outcome = "not_found";
            ev.object_type = Some("patient".into());
            ev.object_id = Some(patient.to_string());
            state.store.audit(vec![ev]).await?;
            Err(Error::NotFound)
        }
    }
}

fn event(
    c: &Caller,
    a: Action,
    perm: Permission,
    p: &PatientRecord,
    object: &str,
) -> store::audit::NewAuditEvent {
    let mut ev = c.patient_event(a, perm, p.clinic_id, &p.id.to_string());
    ev.object_type = Some(object.into());
    ev
}

/// Checks the caller may read the patient's clinical record and audits the
/// read as `action` on `object`.
async fn read_checked(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    action: Action,
    object: &str,
) -> Result<PatientRecord, Error> {
    let p = patient_of(state, c, Permission::MeasureRead, pid, action).await?;
    state
        .store
        .audit(vec![event(c, action, Permission::MeasureRead, &p, object)])
        .await?;
    Ok(p)
}

pub fn parse_route(s: &str) -> Result<Route, Error> {
    serde_json::from_value(serde_json::json!(s)).map_err(|_| {
        invalid(
            "route",
            format!("{s:?} is not a route (iv, im, sc, intranasal, sublingual)"),
        )
    })
}

pub fn route_key(r: Route) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn full_name(p: &PatientRecord) -> String {
    format!("{} {}", p.details.given_name, p.details.family_name)
}

// ---- Assessment -------------------------------------------------------------

/// The latest version of each part, parsed, with every version's metadata.
pub struct Assessment {
    pub patient: Option<(PatientPart, AssessmentPart)>,
    pub clinical: Option<(ClinicalPart, AssessmentPart)>,
    pub versions: Vec<AssessmentPart>,
}

pub fn latest_parts(parts: Vec<AssessmentPart>) -> Result<Assessment, Error> {
    let patient = parts
        .iter()
        .find(|p| p.part == "patient")
        .map(|p| Ok::<_, Error>((stored("assessment part", &p.data)?, p.clone())))
        .transpose()?;
    let clinical = parts
        .iter()
        .find(|p| p.part == "clinical")
        .map(|p| Ok::<_, Error>((stored("assessment part", &p.data)?, p.clone())))
        .transpose()?;
    Ok(Assessment {
        patient,
        clinical,
        versions: parts,
    })
}

/// The assessment, audited.
pub async fn assessment(state: &Clinic, c: &Caller, pid: PatientId) -> Result<Assessment, Error> {
    read_checked(state, c, pid, Action::AssessmentRead, "assessment").await?;
    latest_parts(state.store.assessment_parts(pid).await?)
}

/// Staff record the patient's part (with the patient, or from paper).
pub async fn record_patient_part(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    part: PatientPart,
    source: &'static str,
) -> Result<i64, Error> {
    record_part(state, c, pid, "patient", &part, part.validate(), source).await
}

/// The nurse's and prescriber's part.
pub async fn record_clinical_part(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    part: ClinicalPart,
    source: &'static str,
) -> Result<i64, Error> {
    record_part(state, c, pid, "clinical", &part, part.validate(), source).await
}

/// Stores a part as its next version, audited; the caller's permission is
/// checked before the part's own check is reported.
async fn record_part<T: serde::Serialize>(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    name: &'static str,
    part: &T,
    checked: Result<(), domain::DomainError>,
    source: &'static str,
) -> Result<i64, Error> {
    let p = patient_of(
        state,
        c,
        Permission::AssessmentRecord,
        pid,
        Action::AssessmentRecord,
    )
    .await?;
    checked?;
    let data = serde_json::to_string(part).map_err(|e| Error::Internal(e.to_string()))?;
    let ev = event(
        c,
        Action::AssessmentRecord,
        Permission::AssessmentRecord,
        &p,
        "assessment",
    );
    Ok(state
        .store
        .insert_assessment_part(p.clinic_id, pid, name, &data, source, c.user_id(), None, ev)
        .await?)
}

// ---- Links ------------------------------------------------------------------

/// Sends the patient a single-use link to their part of the assessment or to
/// consent for a route. Returns the token (shown once to staff).
pub async fn send_link(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    purpose: &str,
    route: Option<&str>,
    valid_hours: i64,
) -> Result<(PatientLink, String), Error> {
    let (perm, purpose, route) = match (purpose, route) {
        ("assessment", _) => (Permission::AssessmentRecord, "assessment", None),
        ("consent", Some(r)) => (Permission::ConsentRecord, "consent", Some(parse_route(r)?)),
        ("consent", None) => return Err(invalid("route", "choose the route the consent is for")),
        _ => return Err(invalid("purpose", "must be assessment or consent")),
    };
    let p = patient_of(state, c, perm, pid, Action::LinkCreate).await?;
    if !(1..=24 * 30).contains(&valid_hours) {
        return Err(invalid(
            "valid_hours",
            "must be between 1 and 720 hours (30 days)",
        ));
    }
    if let Some(r) = route {
        if state
            .store
            .current_consent_document(p.clinic_id, &route_key(r))
            .await?
            .is_none()
        {
            return Err(invalid(
                "route",
                format!("the clinic has no consent document for {} yet", r.label()),
            ));
        }
    }
    let token = random_token(24);
    let now = state.now();
    let link = NewPatientLink {
        id: uuid::Uuid::now_v7().to_string(),
        clinic: p.clinic_id,
        patient: pid,
        purpose,
        route: route.map(route_key),
        token_hash: secret_hash(&token),
        created_by: c.user_id(),
        expires_at: now + valid_hours * HOUR,
    };
    let mut ev = event(c, Action::LinkCreate, perm, &p, "patient_link");
    ev.object_id = Some(link.id.clone());
    ev.detail = Some(purpose.into());
    let jobs =
        crate::jobs::patient_link_jobs(&link.id, p.clinic_id, pid, purpose, link.expires_at, now);
    state.store.insert_patient_link(&link, ev, &jobs).await?;
    Ok((
        PatientLink {
            id: link.id,
            clinic_id: p.clinic_id.to_string(),
            patient_id: pid.to_string(),
            purpose: purpose.into(),
            route: link.route,
            created_at: now,
            expires_at: link.expires_at,
            used_at: None,
        },
        token,
    ))
}

/// The open link behind a token, of the expected purpose.
pub async fn open_link(
    state: &Clinic,
    token: &str,
    purpose: &str,
) -> Result<Result<PatientLink, crate::measures::LinkProblem>, Error> {
    use crate::measures::LinkProblem;
    if token.is_empty() || token.len() > 100 {
        return Ok(Err(LinkProblem::Invalid));
    }
    let Some(l) = state
        .store
        .patient_link_by_hash(&secret_hash(token))
        .await?
    else {
        return Ok(Err(LinkProblem::Invalid));
    };
    if l.purpose != purpose {
        return Ok(Err(LinkProblem::Invalid));
    }
    if l.used_at.is_some() {
        return Ok(Err(LinkProblem::Used));
    }
    if l.expires_at <= state.now() {
        return Ok(Err(LinkProblem::Expired));
    }
    Ok(Ok(l))
}

fn link_ids(l: &PatientLink) -> Result<(ClinicId, PatientId), Error> {
    let bad = |_| Error::Internal("stored link ids".into());
    Ok((
        l.clinic_id.parse().map_err(bad)?,
        l.patient_id.parse().map_err(bad)?,
    ))
}

fn link_event(
    meta: &RequestMeta,
    a: Action,
    l: &PatientLink,
    object: &str,
) -> store::audit::NewAuditEvent {
    let mut ev = store::audit::NewAuditEvent::new(a, "patient (link)");
    ev.clinic_id = Some(l.clinic_id.clone());
    ev.patient_id = Some(l.patient_id.clone());
    ev.object_type = Some(object.into());
    ev.source_ip = meta.source_ip.clone();
    ev.request_id = Some(meta.request_id.clone());
    ev
}

/// The patient answers their part through the link.
pub async fn submit_assessment_link(
    state: &Clinic,
    meta: &RequestMeta,
    token: &str,
    part: PatientPart,
) -> Result<Result<i64, crate::measures::LinkProblem>, Error> {
    crate::leads::limit(state, meta)?;
    let l = match open_link(state, token, "assessment").await? {
        Ok(l) => l,
        Err(p) => return Ok(Err(p)),
    };
    part.validate()?;
    let (clinic, pid) = link_ids(&l)?;
    let data = serde_json::to_string(&part).map_err(|e| Error::Internal(e.to_string()))?;
    let ev = link_event(meta, Action::AssessmentRecord, &l, "assessment");
    match state
        .store
        .insert_assessment_part(clinic, pid, "patient", &data, "link", None, Some(&l.id), ev)
        .await
    {
        Ok(v) => Ok(Ok(v)),
        Err(store::StoreError::Domain(domain::DomainError::Conflict(_))) => {
            Ok(Err(crate::measures::LinkProblem::Used))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Consent documents ------------------------------------------------------

/// A clinic's consent documents, every version (admins and clinicians).
pub async fn documents(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
) -> Result<Vec<ConsentDocument>, Error> {
    if !(c.may(Permission::ConsentPublish, clinic) || c.may(Permission::MeasureRead, clinic)) {
        return Err(Error::Forbidden);
    }
    Ok(state.store.consent_documents(clinic).await?)
}

/// Publishes a new version: parsed and checked (every required topic, text
/// a PDF can print), refused when nothing changed.
pub async fn publish(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
    route: &str,
    source: &str,
    witness_required: bool,
) -> Result<(i64, Document), Error> {
    c.require(Permission::ConsentPublish, clinic)?;
    let route = parse_route(route)?;
    let doc = Document::parse(source).map_err(Error::Invalid)?;
    let text = doc.text();
    if let Some(ch) = crate::documents::unprintable(&text) {
        return Err(invalid(
            "body",
            format!("the character {ch:?} cannot be printed in the signed PDF; use plain letters and punctuation"),
        ));
    }
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let mut ev = c.event(Action::ConsentPublish);
    ev.clinic_id = Some(clinic.to_string());
    ev.object_type = Some("consent_document".into());
    let v = state
        .store
        .publish_consent_document(
            clinic,
            &route_key(route),
            &doc.title,
            source,
            &text,
            &doc.hash(),
            witness_required,
            user,
            ev,
        )
        .await?;
    Ok((v, doc))
}

/// The current document for the patient's clinic and a route, for signing.
pub async fn document_for(
    state: &Clinic,
    clinic: ClinicId,
    route: Route,
) -> Result<ConsentDocument, Error> {
    state
        .store
        .current_consent_document(clinic, &route_key(route))
        .await?
        .ok_or_else(|| {
            invalid(
                "route",
                format!(
                    "the clinic has no consent document for {} yet",
                    route.label()
                ),
            )
        })
}

// ---- Signatures -------------------------------------------------------------

/// The consent state per route the clinic has a document for, from the
/// latest signature of each.
pub async fn consent_states(
    state: &Clinic,
    clinic: ClinicId,
    consents: &[Consent],
) -> Result<Vec<(Route, ConsentState, Option<Consent>)>, Error> {
    let docs = state.store.consent_documents(clinic).await?;
    let now = state.now();
    let mut out = vec![];
    for r in [
        Route::Iv,
        Route::Im,
        Route::Sc,
        Route::Intranasal,
        Route::Sublingual,
        Route::Oral,
    ] {
        let key = route_key(r);
        let current = docs.iter().find(|d| d.route == key).map(|d| d.version);
        let latest = consents.iter().find(|s| s.route == key);
        if current.is_none() && latest.is_none() {
            continue;
        }
        let signed = latest.map(|s| consent::Signed {
            document_version: s.document_version,
            signed_at: s.signed_at,
            witness_required: s.witness_required,
            witnessed: s.witnessed_at.is_some(),
            withdrawn_at: s.withdrawn_at,
        });
        out.push((
            r,
            consent::state(signed.as_ref(), current, now),
            latest.cloned(),
        ));
    }
    Ok(out)
}

/// A patient's signatures, audited.
pub async fn consents(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
) -> Result<(PatientRecord, Vec<Consent>), Error> {
    let p = read_checked(state, c, pid, Action::ConsentRead, "consent").await?;
    Ok((p, state.store.consents(pid).await?))
}

/// The PDF of one signature, audited.
pub async fn pdf(state: &Clinic, c: &Caller, pid: PatientId, id: &str) -> Result<Vec<u8>, Error> {
    let p = patient_of(state, c, Permission::MeasureRead, pid, Action::ConsentRead).await?;
    let bytes = state
        .store
        .consent_pdf(pid, id)
        .await?
        .ok_or(Error::NotFound)?;
    let mut ev = event(
        c,
        Action::ConsentRead,
        Permission::MeasureRead,
        &p,
        "consent",
    );
    ev.object_id = Some(id.to_string());
    ev.detail = Some("pdf".into());
    state.store.audit(vec![ev]).await?;
    Ok(bytes)
}

/// The PDF of a signature: the document exactly as signed, then who signed,
/// how and when, and the document's SHA-256.
pub fn consent_pdf(
    clinic: &store::org::Clinic,
    p: &PatientRecord,
    doc: &ConsentDocument,
    typed_name: &str,
    signed_at: i64,
    how: &str,
) -> Result<Vec<u8>, Error> {
    use crate::documents::Block;
    let parsed = Document::parse(&doc.source).map_err(Error::Invalid)?;
    let mut blocks = vec![Block::title(&parsed.title)];
    for s in &parsed.sections {
        blocks.push(Block::heading(&s.heading));
        blocks.push(Block::body(&s.text));
    }
    let when = clinic.settings.clock().stamp(signed_at);
    blocks.push(Block::heading("Signature"));
    blocks.push(Block::body(&format!(
        "Patient: {}, born {} (record {})\nSigned by typing the name: {typed_name}\nI have read this document, had the chance to ask questions, and agree to treatment.\nSigned: {when}, {how}\nWitness: {}",
        full_name(p),
        p.details.date_of_birth,
        p.mrn,
        if doc.witness_required { "required; recorded in the chart when given" } else { "not required by the clinic's policy" },
    )));
    blocks.push(Block::small(&format!(
        "{}, consent document for {} version {}. SHA-256 of the document text: {}",
        clinic.settings.name, doc.route, doc.version, doc.sha256
    )));
    crate::documents::render(
        &blocks,
        &format!("{} - {} v{}", clinic.settings.name, doc.route, doc.version),
    )
    .map_err(Error::Internal)
}

struct Signing<'a> {
    clinic: ClinicId,
    patient: &'a PatientRecord,
    doc: &'a ConsentDocument,
    input: &'a SignInput,
    channel: &'static str,
    recorded_by: Option<domain::ids::UserId>,
    link_id: Option<String>,
    audit: store::audit::NewAuditEvent,
}

async fn store_signature(state: &Clinic, s: Signing<'_>) -> Result<String, Error> {
    consent::check_signature(s.input, &full_name(s.patient), &s.doc.sha256)
        .map_err(Error::Invalid)?;
    let clinic = state.store.clinic(s.clinic).await?;
    let signed_at = state.now();
    let how = match s.channel {
        "clinic" => "in the clinic",
        _ => "through a secure link",
    };
    let pdf = consent_pdf(
        &clinic,
        s.patient,
        s.doc,
        s.input.typed_name.trim(),
        signed_at,
        how,
    )?;
    let id = uuid::Uuid::now_v7().to_string();
    let mut ev = s.audit;
    ev.object_type = Some("consent".into());
    ev.object_id = Some(id.clone());
    ev.detail = Some(format!("{} version {}", s.doc.route, s.doc.version));
    let c = NewConsent {
        id: id.clone(),
        clinic: s.clinic,
        patient: s.patient.id,
        document: s.doc,
        typed_name: s.input.typed_name.trim().to_string(),
        signed_at,
        channel: s.channel,
        recorded_by: s.recorded_by,
        link_id: s.link_id,
        pdf_sha256: hex::encode(Sha256::digest(&pdf)),
        pdf,
    };
    state.store.insert_consent(&c, ev).await?;
    Ok(id)
}

/// The patient signs in the clinic (on a tablet the staff member hands them).
pub async fn sign_in_clinic(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    route: &str,
    input: SignInput,
) -> Result<String, Error> {
    let route = parse_route(route)?;
    let p = patient_of(
        state,
        c,
        Permission::ConsentRecord,
        pid,
        Action::ConsentSign,
    )
    .await?;
    let doc = document_for(state, p.clinic_id, route).await?;
    let ev = event(
        c,
        Action::ConsentSign,
        Permission::ConsentRecord,
        &p,
        "consent",
    );
    store_signature(
        state,
        Signing {
            clinic: p.clinic_id,
            patient: &p,
            doc: &doc,
            input: &input,
            channel: "clinic",
            recorded_by: c.user_id(),
            link_id: None,
            audit: ev,
        },
    )
    .await
}

/// What a consent link shows: the document and whose it is.
pub async fn consent_link_view(
    state: &Clinic,
    l: &PatientLink,
) -> Result<(ConsentDocument, String), Error> {
    let (clinic, pid) = link_ids(l)?;
    let route = parse_route(l.route.as_deref().unwrap_or_default())?;
    let doc = document_for(state, clinic, route).await?;
    let clinic = state.store.clinic(clinic).await?;
    let _ = pid;
    Ok((doc, clinic.settings.name))
}

/// The patient signs through a link.
pub async fn sign_through_link(
    state: &Clinic,
    meta: &RequestMeta,
    token: &str,
    input: SignInput,
) -> Result<Result<String, crate::measures::LinkProblem>, Error> {
    crate::leads::limit(state, meta)?;
    let l = match open_link(state, token, "consent").await? {
        Ok(l) => l,
        Err(p) => return Ok(Err(p)),
    };
    let (clinic, pid) = link_ids(&l)?;
    let p = state
        .store
        .patient(pid, &[clinic])
        .await?
        .ok_or(Error::NotFound)?;
    let route = parse_route(l.route.as_deref().unwrap_or_default())?;
    let doc = document_for(state, clinic, route).await?;
    let ev = link_event(meta, Action::ConsentSign, &l, "consent");
    match store_signature(
        state,
        Signing {
            clinic,
            patient: &p,
            doc: &doc,
            input: &input,
            channel: "link",
            recorded_by: None,
            link_id: Some(l.id.clone()),
            audit: ev,
        },
    )
    .await
    {
        Err(Error::Conflict(m)) if m.contains("already been used") => {
            Ok(Err(crate::measures::LinkProblem::Used))
        }
        other => other.map(Ok),
    }
}

/// A clinician witnesses a signature that needs it.
pub async fn witness(state: &Clinic, c: &Caller, pid: PatientId, id: &str) -> Result<(), Error> {
    let p = patient_of(
        state,
        c,
        Permission::ConsentRecord,
        pid,
        Action::ConsentWitness,
    )
    .await?;
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let mut ev = event(
        c,
        Action::ConsentWitness,
        Permission::ConsentRecord,
        &p,
        "consent",
    );
    ev.object_id = Some(id.to_string());
    Ok(state.store.witness_consent(pid, id, user, ev).await?)
}

/// Records the patient's withdrawal of a consent, with a reason.
pub async fn withdraw(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    id: &str,
    reason: &str,
) -> Result<(), Error> {
    let p = patient_of(
        state,
        c,
        Permission::ConsentRecord,
        pid,
        Action::ConsentWithdraw,
    )
    .await?;
    let reason = consent::check_withdrawal(reason).map_err(|e| Error::Invalid(vec![e]))?;
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let mut ev = event(
        c,
        Action::ConsentWithdraw,
        Permission::ConsentRecord,
        &p,
        "consent",
    );
    ev.object_id = Some(id.to_string());
    Ok(state
        .store
        .withdraw_consent(pid, id, user, &reason, ev)
        .await?)
}

// ---- Status, gate and plans -------------------------------------------------

/// Where a patient stands before the first dose.
pub struct Status {
    pub eligibility: EligibilityState,
    /// The state per route, with the latest signature of each.
    pub consents: Vec<(Route, ConsentState, Option<Consent>)>,
    /// Every signature, newest first.
    pub signed: Vec<Consent>,
    /// Every plan version, newest first.
    pub plans: Vec<StoredPlan>,
    pub banner: String,
    pub banner_class: &'static str,
}

impl Status {
    /// The current plan.
    pub fn plan(&self) -> Option<&StoredPlan> {
        self.plans.first()
    }

    /// The consent state for a route (missing when the route has none).
    pub fn consent(&self, route: Route) -> ConsentState {
        self.consents
            .iter()
            .find(|c| c.0 == route)
            .map(|c| c.1.clone())
            .unwrap_or(ConsentState::NoDocument)
    }
}

/// The status without auditing (the caller audits the read it is part of).
/// What the patient said on the public self-assessment that became their
/// record, for the assessment to start from: the exclusion screen and the
/// treatments tried. Nothing of it is a clinical fact until the patient's
/// part of the assessment confirms it.
pub struct SelfAssessment {
    pub at: i64,
    pub screen:
        std::collections::BTreeMap<domain::eligibility::Condition, domain::assessment::Answer>,
    pub treatments: Vec<&'static str>,
}

/// The self-assessment of the lead that became `pid`, if there was one.
/// Read as part of the assessment (whose read is audited by its caller).
pub async fn self_assessment(
    state: &Clinic,
    pid: PatientId,
) -> Result<Option<SelfAssessment>, Error> {
    let Some(lead) = state.store.lead_of_patient(pid).await? else {
        return Ok(None);
    };
    let list = |k: &str| -> Result<Vec<String>, Error> {
        match &lead.detail[k] {
            serde_json::Value::Null => Ok(vec![]),
            v => serde_json::from_value(v.clone()).map_err(|e| {
                tracing::error!(lead = %lead.id, field = k, "stored self-assessment does not parse: {e}");
                Error::Internal(format!("stored self-assessment {k} does not parse"))
            }),
        }
    };
    Ok(Some(SelfAssessment {
        at: lead.created_at,
        screen: domain::leads::screen_answers(&list("exclusions")?),
        treatments: domain::leads::treatments_tried(&list("treatments")?),
    }))
}

pub async fn status_of(state: &Clinic, clinic: ClinicId, pid: PatientId) -> Result<Status, Error> {
    let decisions = state.store.decisions(pid).await?;
    let eligibility = EligibilityState::from_latest(
        decisions
            .first()
            .map(|d| (d.version, d.decision.as_str(), d.signed_off_by.is_some())),
    );
    let signed = state.store.consents(pid).await?;
    let consents = consent_states(state, clinic, &signed).await?;
    let plans = state.store.plans(pid).await?;
    let plan = plans.first();
    // The consent that matters: the plan's route, else the one most recently
    // signed, else whichever the clinic offers first.
    let route = plan
        .and_then(|p| parse_route(&p.route).ok())
        .or_else(|| signed.first().and_then(|s| parse_route(&s.route).ok()));
    let consent = match route {
        Some(r) => consents.iter().find(|c| c.0 == r).map(|c| c.1.clone()),
        None => consents
            .iter()
            .find(|c| c.1.is_valid())
            .or(consents.first())
            .map(|c| c.1.clone()),
    }
    .unwrap_or(ConsentState::Missing);
    let (banner, banner_class) = domain::plans::banner(&eligibility, &consent, plan.is_some());
    Ok(Status {
        eligibility,
        consents,
        signed,
        plans,
        banner,
        banner_class,
    })
}

/// The status, audited as a read of the chart's pre-treatment record.
pub async fn status(state: &Clinic, c: &Caller, pid: PatientId) -> Result<Status, Error> {
    Ok(chart(state, c, pid, Action::PlanRead, "treatment_plan")
        .await?
        .1)
}

/// A chart tab's read: the patient and their status, checked and audited
/// once as `action` on `object`.
pub async fn chart(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    action: Action,
    object: &str,
) -> Result<(PatientRecord, Status), Error> {
    let p = read_checked(state, c, pid, action, object).await?;
    let s = status_of(state, p.clinic_id, pid).await?;
    Ok((p, s))
}

/// The gate for a route: approved eligibility and valid consent, or the
/// reasons why not. Dose orders pass through this too.
pub async fn gate(
    state: &Clinic,
    clinic: ClinicId,
    pid: PatientId,
    route: Route,
) -> Result<(i64, String), Error> {
    let s = status_of(state, clinic, pid).await?;
    let consent = s.consent(route);
    domain::plans::gate(&s.eligibility, &consent)?;
    let version = match s.eligibility {
        EligibilityState::Approved { version } => version,
        _ => return Err(Error::Conflict("not yet eligible".into())),
    };
    let id = s
        .consents
        .into_iter()
        .find(|c| c.0 == route)
        .and_then(|c| c.2)
        .map(|c| c.id)
        .ok_or_else(|| Error::Conflict("not yet eligible: consent missing".into()))?;
    Ok((version, id))
}

/// Writes the next version of a patient's plan, behind the gate.
pub async fn create_plan(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
    input: PlanInput,
) -> Result<(i64, domain::plans::Plan), Error> {
    let p = patient_of(state, c, Permission::PlanWrite, pid, Action::PlanCreate).await?;
    let first = state.store.plans(pid).await?.is_empty();
    let (plan, _) = domain::plans::check(
        input,
        &state.protocols(),
        &c.org_id.to_string(),
        &state.instruments,
        first,
    )?;
    let mut ev = event(
        c,
        Action::PlanCreate,
        Permission::PlanWrite,
        &p,
        "treatment_plan",
    );
    let (eligibility_version, consent_id) = match gate(state, p.clinic_id, pid, plan.route).await {
        Ok(x) => x,
        Err(e) => {
            ev.outcome = "refused";
            ev.detail = Some(match &e {
                Error::Conflict(m) => m.clone(),
                _ => "refused".into(),
            });
            state.store.audit(vec![ev]).await?;
            return Err(e);
        }
    };
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let v = state
        .store
        .insert_plan(
            p.clinic_id,
            pid,
            &plan,
            eligibility_version,
            &consent_id,
            user,
            ev,
        )
        .await?;
    Ok((v, plan))
}

/// A patient's plans, newest first, audited.
pub async fn plans(state: &Clinic, c: &Caller, pid: PatientId) -> Result<Vec<StoredPlan>, Error> {
    read_checked(state, c, pid, Action::PlanRead, "treatment_plan").await?;
    Ok(state.store.plans(pid).await?)
}

/// A patient's assessment parts, for a chart view whose reading is the
/// audited event.
pub async fn assessment_parts(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
) -> Result<Vec<store::intake::AssessmentPart>, Error> {
    patient_of(
        state,
        c,
        Permission::MeasureRead,
        pid,
        Action::AssessmentRead,
    )
    .await?;
    Ok(state.store.assessment_parts(pid).await?)
}

/// A patient's questionnaire scores over time, for the assessment view.
pub async fn score_history(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
) -> Result<Vec<store::measures::ScorePoint>, Error> {
    patient_of(
        state,
        c,
        Permission::MeasureRead,
        pid,
        Action::AssessmentRead,
    )
    .await?;
    Ok(state.store.score_history(pid).await?)
}

/// The assessment or consent link a token names, if any (the token is the
/// patient's credential).
pub async fn link_by_token(
    state: &Clinic,
    token: &str,
) -> Result<Option<store::intake::PatientLink>, Error> {
    Ok(state
        .store
        .patient_link_by_hash(&secret_hash(token))
        .await?)
}
