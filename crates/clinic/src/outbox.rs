//! Work after the request: the outbox worker, which sends the jobs of
//! [`crate::jobs`] through the [`crate::mailer`]. Reminders are
//! enqueued in the same transaction as the booking (48 h and 24 h before the
//! visit); the worker sends each one only if the visit is still booked at the
//! same time (a moved visit has new reminders; a cancelled one has none).
//! E-mail subjects never carry patient data.

use std::time::Duration;

use domain::ids::ClinicId;
use store::outbox::{Job, LinkTable};
use store::scheduling::Status;

use crate::jobs::{
    ConfirmationPayload, DischargePayload, LinkPayload, OfferPayload, PatientLinkPayload,
    ReceiptPayload, ReminderPayload, SeriesConfirmationPayload, StatementPayload, CONFIRMATION,
    DISCHARGE, PATIENT_LINK, QUESTIONNAIRE, RECEIPT, REMINDER, SERIES_CONFIRMATION, STATEMENT,
    WAITLIST_OFFER,
};
use crate::Clinic;

/// Attempts before a job is given up.
const MAX_ATTEMPTS: i32 = 8;

/// Runs every due job once (tests call this with a chosen `now`); returns
/// how many were handled.
pub async fn drain(state: &Clinic, now: i64) -> Result<usize, store::StoreError> {
    let mut n = 0;
    loop {
        let jobs = state.store.claim_jobs(now, 5 * 60_000_000, 20).await?;
        if jobs.is_empty() {
            return Ok(n);
        }
        for job in jobs {
            n += 1;
            match run(state, &job).await {
                Ok(outcome) => state.store.finish_job(&job.id, &outcome).await?,
                Err(e) => {
                    // Back off: 1, 2, 4 ... minutes.
                    let retry = now + 60_000_000 * (1i64 << job.attempts.clamp(0, 10));
                    tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, "job failed");
                    state
                        .store
                        .fail_job(&job.id, &e, retry, job.attempts >= MAX_ATTEMPTS)
                        .await?;
                }
            }
        }
    }
}

/// The worker beside the server: drains the outbox every `every`.
pub fn spawn_worker(state: Clinic, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut rules_ran: Option<std::time::Instant> = None;
        loop {
            // The first round comes one interval after start: start-up stays
            // quick, and tests (which drain the outbox themselves) set a long
            // interval to keep the worker out of their way.
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            // Questionnaire rules first (every five minutes at most), so
            // their e-mails go out in this round.
            if rules_ran.is_none_or(|t| t.elapsed() >= Duration::from_secs(300)) {
                rules_ran = Some(std::time::Instant::now());
                if let Err(e) = crate::measures::run_rules(&state, state.now()).await {
                    tracing::error!(error = ?e, "questionnaire rules");
                }
                // Memberships whose next month has begun are billed.
                if let Err(e) = crate::billing::renew_memberships(&state, state.now()).await {
                    tracing::error!(error = ?e, "membership renewals");
                }
            }
            // Protocol versions another instance added are loaded (a count
            // compared each round).
            if let Err(e) = crate::protocols::refresh(&state).await {
                tracing::error!(error = ?e, "protocol versions");
            }
            if let Err(e) = drain(&state, state.now()).await {
                tracing::error!(error = %e, "outbox worker");
            }
        }
    });
}

async fn run(state: &Clinic, job: &Job) -> Result<String, String> {
    match job.kind.as_str() {
        REMINDER => reminder(state, job).await,
        WAITLIST_OFFER => offer(state, job).await,
        CONFIRMATION => confirmation(state, job).await,
        SERIES_CONFIRMATION => series_confirmation(state, job).await,
        QUESTIONNAIRE => questionnaire(state, job).await,
        PATIENT_LINK => patient_link(state, job).await,
        DISCHARGE => discharge(state, job).await,
        RECEIPT => receipt(state, job).await,
        STATEMENT => statement(state, job).await,
        other => Ok(format!("skipped: unknown job kind {other}")),
    }
}

/// Who a patient e-mail goes to: their address, the name to greet them by,
/// and the clinic it comes from. `Err` carries why nothing can be sent.
struct Addressee {
    email: String,
    first: String,
    clinic: store::org::Clinic,
}

fn db(e: store::StoreError) -> String {
    format!("database: {e}")
}

/// `Ok(Err(reason))` when the job is finished without sending (no patient,
/// no address); `Err` when it should be retried.
async fn addressee(
    state: &Clinic,
    clinic: ClinicId,
    patient: domain::ids::PatientId,
) -> Result<Result<Addressee, String>, String> {
    let Some(p) = state.store.patient(patient, &[clinic]).await.map_err(db)? else {
        return Ok(Err("skipped: patient not found".into()));
    };
    let Some(email) = p.details.email.clone() else {
        return Ok(Err("skipped: no e-mail address".into()));
    };
    let first = p
        .details
        .preferred_name
        .clone()
        .unwrap_or(p.details.given_name.clone());
    let clinic = state.store.clinic(clinic).await.map_err(db)?;
    Ok(Ok(Addressee {
        email,
        first,
        clinic,
    }))
}

/// An instant as the patient reads it: in the clinic's zone, with the zone named.
fn clinic_time(m: i64, clinic: &store::org::Clinic) -> Result<String, String> {
    let tz = jiff::tz::TimeZone::get(&clinic.settings.time_zone).map_err(|e| e.to_string())?;
    Ok(domain::time::to_timestamp(m)
        .to_zoned(tz)
        .strftime("%A %B %-d at %-I:%M %p (%Z)")
        .to_string())
}

/// Sends, or records that no mail server is configured.
async fn deliver(
    state: &Clinic,
    to: &Addressee,
    subject: &str,
    body: String,
    sent: String,
) -> Result<String, String> {
    deliver_with(state, to, subject, body, None, sent).await
}

async fn deliver_with(
    state: &Clinic,
    to: &Addressee,
    subject: &str,
    body: String,
    calendar: Option<String>,
    sent: String,
) -> Result<String, String> {
    match state
        .mailer
        .send_with(&to.email, subject, body, calendar)
        .await?
    {
        true => Ok(sent),
        false => Ok("skipped: no mail server configured".into()),
    }
}

async fn reminder(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: ReminderPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let store = &state.store;
    let Some(a) = store
        .appointment(p.appointment_id, &[p.clinic_id])
        .await
        .map_err(db)?
    else {
        return Ok("skipped: visit not found".into());
    };
    if a.status != Status::Booked {
        return Ok(format!(
            "skipped: visit {}",
            a.status.label().to_lowercase()
        ));
    }
    if a.sequence != p.sequence {
        return Ok("skipped: visit was moved".into());
    }
    let to = match addressee(state, a.clinic_id, a.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let ty = store
        .appointment_types(a.clinic_id)
        .await
        .map_err(db)?
        .into_iter()
        .find(|t| t.code == a.type_code);
    let s = &to.clinic.settings;
    let place = crate::scheduling::Attend::of(ty.as_ref(), a.id, s).where_text(s);
    let instructions = ty.map(|t| t.instructions).unwrap_or_default();
    let body = format!(
        "Hello {first},\n\nThis is a reminder of your {what} on {when}.\n\n{instructions}\n\n\
         {place}\n\nTo move or cancel, call us on {phone}. If you cancel less than \
         a day before, we may not be able to offer the time to someone else.\n\n{name}\n",
        first = to.first,
        what = a.type_name,
        when = clinic_time(a.starts_at, &to.clinic)?,
        name = s.name,
        phone = s.phone,
    );
    // The subject says nothing about the person or the treatment.
    let subject = format!("Reminder: your upcoming visit at {}", s.name);
    deliver(
        state,
        &to,
        &subject,
        body,
        format!("sent ({} h before)", p.hours_before),
    )
    .await
}

/// The patient's next booked integration session, if any.
pub async fn next_integration(
    state: &Clinic,
    clinic: ClinicId,
    patient: domain::ids::PatientId,
) -> Result<Option<store::scheduling::Appointment>, store::StoreError> {
    let now = state.now();
    Ok(state
        .store
        .patient_appointments(patient, &[clinic])
        .await?
        .into_iter()
        .filter(|a| a.status == Status::Booked && a.starts_at > now && a.type_code == "integration")
        .min_by_key(|a| a.starts_at))
}

/// An invoice's lines and balance as plain text for an e-mail.
fn invoice_text(
    inv: &store::billing::Invoice,
    lines: &[store::billing::InvoiceLine],
    balance: i64,
) -> String {
    use domain::billing::fmt_money;
    let mut t = format!("Invoice {} for {}\n", inv.number, inv.service_date);
    for l in lines {
        let amount = if l.kind == "discount" {
            -l.amount_minor
        } else {
            l.amount_minor
        };
        t.push_str(&format!(
            "  {}  {}\n",
            l.description,
            fmt_money(amount, &inv.currency)
        ));
    }
    t.push_str(&format!(
        "  Balance due: {}\n",
        fmt_money(balance, &inv.currency)
    ));
    t
}

async fn receipt(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: ReceiptPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let Some(inv) = state.store.invoice(&p.invoice_id).await.map_err(db)? else {
        return Ok("skipped: invoice not found".into());
    };
    let pid: domain::ids::PatientId = inv
        .patient_id
        .parse()
        .map_err(|_| "bad patient id".to_string())?;
    let to = match addressee(state, p.clinic_id, pid).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let ids = vec![inv.id.clone()];
    let lines = state.store.invoice_lines(&ids).await.map_err(db)?;
    let entries = state.store.billing_entries(&ids).await.map_err(db)?;
    let Some(paid) = entries.iter().find(|e| e.id == p.entry_id) else {
        return Ok("skipped: payment not found".into());
    };
    let (account, _) =
        store::billing::account_of(&lines, &entries, &inv.currency).map_err(|e| e.to_string())?;
    let s = &to.clinic.settings;
    let method = domain::billing::Method::parse("m", paid.method.as_deref().unwrap_or(""))
        .map(|m| m.label())
        .unwrap_or("Payment");
    let body = format!(
        "Hello {first},\n\nThank you. We received {amount} ({method}) on {when}.\n\n{inv}\n{name}\n{phone}\n",
        first = to.first,
        amount = domain::billing::fmt_money(paid.amount_minor, &paid.currency),
        when = clinic_time(paid.at, &to.clinic)?,
        inv = invoice_text(&inv, &lines, account.balance()),
        name = s.name,
        phone = s.phone,
    );
    // The subject says nothing about the person or the treatment.
    let subject = format!("Your receipt from {}", s.name);
    deliver(state, &to, &subject, body, "sent".into()).await
}

async fn statement(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: StatementPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let pid: domain::ids::PatientId = p
        .patient_id
        .parse()
        .map_err(|_| "bad patient id".to_string())?;
    let to = match addressee(state, p.clinic_id, pid).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let invs = state
        .store
        .invoices_of_patient(&p.patient_id)
        .await
        .map_err(db)?;
    let ids: Vec<String> = invs.iter().map(|i| i.id.clone()).collect();
    let lines = state.store.invoice_lines(&ids).await.map_err(db)?;
    let entries = state.store.billing_entries(&ids).await.map_err(db)?;
    let mut open = String::new();
    let mut total = 0;
    let mut currency = String::from("USD");
    for inv in &invs {
        let l: Vec<_> = lines
            .iter()
            .filter(|l| l.invoice_id == inv.id)
            .cloned()
            .collect();
        let e: Vec<_> = entries
            .iter()
            .filter(|e| e.invoice_id == inv.id)
            .cloned()
            .collect();
        let (a, _) =
            store::billing::account_of(&l, &e, &inv.currency).map_err(|e| e.to_string())?;
        if a.balance() > 0 {
            open.push_str(&invoice_text(inv, &l, a.balance()));
            open.push('\n');
            total += a.balance();
            currency = inv.currency.clone();
        }
    }
    let s = &to.clinic.settings;
    let body = if total == 0 {
        format!(
            "Hello {},\n\nYour account with us is settled: nothing is owed.\n\n{}\n",
            to.first, s.name
        )
    } else {
        format!(
            "Hello {first},\n\nThis is a statement of your account.\n\n{open}Total due: {total}\n\n\
             To pay, call us on {phone} or pay at your next visit.\n\n{name}\n",
            first = to.first,
            total = domain::billing::fmt_money(total, &currency),
            phone = s.phone,
            name = s.name,
        )
    };
    let subject = format!("Your statement from {}", s.name);
    deliver(state, &to, &subject, body, "sent".into()).await
}

async fn discharge(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: DischargePayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let to = match addressee(state, p.clinic_id, p.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let s = &to.clinic.settings;
    let next = match next_integration(state, p.clinic_id, p.patient_id)
        .await
        .map_err(db)?
    {
        Some(a) => format!(
            "Your next integration session is on {}.",
            clinic_time(a.starts_at, &to.clinic)?
        ),
        None => format!(
            "You have no integration session booked yet. It helps most within a few days of \
             today's session: call us on {} to book one.",
            s.phone
        ),
    };
    let instructions = domain::treatment::DISCHARGE_INSTRUCTIONS
        .iter()
        .map(|i| format!("- {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    let body = format!(
        "Hello {first},\n\nThank you for coming in today. For the rest of today, please:\n\n\
         {instructions}\n\n{next}\n\nIf anything worries you, call us on {phone}.\n\n{name}\n",
        first = to.first,
        phone = s.phone,
        name = s.name,
    );
    // The subject says nothing about the person or the treatment.
    let subject = format!("After your visit today at {}", s.name);
    deliver(state, &to, &subject, body, "sent".into()).await
}

async fn offer(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: OfferPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let to = match addressee(state, p.clinic_id, p.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let what = state
        .store
        .appointment_types(p.clinic_id)
        .await
        .map_err(db)?
        .into_iter()
        .find(|t| t.code == p.type_code)
        .map(|t| t.name.to_lowercase())
        .unwrap_or_else(|| "visit".into());
    let s = &to.clinic.settings;
    let body = format!(
        "Hello {first},\n\nA time has opened up for your {what}: {when}.\n\nCall us on {phone} to take it; \
         it goes to whoever books it first.\n\n{name}\n",
        first = to.first,
        when = clinic_time(p.start, &to.clinic)?,
        phone = s.phone,
        name = s.name
    );
    let subject = format!("A time has opened up at {}", s.name);
    deliver(state, &to, &subject, body, "sent".into()).await
}

async fn confirmation(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: ConfirmationPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let Some(a) = state
        .store
        .appointment(p.appointment_id, &[p.clinic_id])
        .await
        .map_err(db)?
    else {
        return Ok("skipped: visit not found".into());
    };
    if a.status != Status::Booked {
        return Ok("skipped: visit no longer booked".into());
    }
    let to = match addressee(state, a.clinic_id, a.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let s = &to.clinic.settings;
    let ty = state
        .store
        .appointment_types(a.clinic_id)
        .await
        .map_err(db)?
        .into_iter()
        .find(|t| t.code == a.type_code);
    let about = match &ty {
        Some(t) if t.public => "It is free and there is no obligation: we will talk about how \
             you are feeling, what you have tried, and whether ketamine-assisted treatment could \
             help."
            .to_string(),
        Some(t) if !t.instructions.is_empty() => format!("Before your visit: {}", t.instructions),
        _ => String::new(),
    };
    let change = if a.self_booked {
        "To move or cancel, sign in to your patient portal or call us"
    } else {
        "To move or cancel, call us"
    };
    let attend = crate::scheduling::Attend::of(ty.as_ref(), a.id, s);
    let body = format!(
        "Hello {first},\n\nYour {what} is booked for {when}. {about}\n\n{place}\n\n\
         {change} on {phone}. The attached file adds the visit to your calendar.\n\n\
         If you are in crisis, call or text 988 (Suicide & Crisis Lifeline), or call 911.\n\n{name}\n",
        first = to.first,
        what = a.type_name,
        when = clinic_time(a.starts_at, &to.clinic)?,
        place = attend.where_text(s),
        phone = s.phone,
        name = s.name,
    );
    let subject = format!("Your appointment at {} is confirmed", s.name);
    let ics = crate::feeds::patient_ics(&a, &to.clinic, &attend);
    deliver_with(state, &to, &subject, body, Some(ics), "sent".into()).await
}

async fn series_confirmation(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: SeriesConfirmationPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    let now = state.now();
    let visits: Vec<_> = state
        .store
        .series_appointments(p.series_id)
        .await
        .map_err(db)?
        .into_iter()
        .filter(|a| a.clinic_id == p.clinic_id && a.status == Status::Booked && a.starts_at > now)
        .collect();
    let Some(first) = visits.first() else {
        return Ok("skipped: no visit of the course is still booked".into());
    };
    let to = match addressee(state, first.clinic_id, first.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let s = &to.clinic.settings;
    let types = state
        .store
        .appointment_types(first.clinic_id)
        .await
        .map_err(db)?;
    let mut lines = vec![];
    let mut with = vec![];
    for a in &visits {
        let ty = types.iter().find(|t| t.code == a.type_code);
        let attend = crate::scheduling::Attend::of(ty, a.id, s);
        let how = match &attend {
            crate::scheduling::Attend::InPerson => String::new(),
            crate::scheduling::Attend::Video(Some(link)) => format!(" (by video: {link})"),
            crate::scheduling::Attend::Video(None) => " (by video)".into(),
        };
        lines.push(format!(
            "- {}: {}{how}",
            clinic_time(a.starts_at, &to.clinic)?,
            a.type_name
        ));
        with.push((a, attend));
    }
    let before = types
        .iter()
        .find(|t| t.dose && visits.iter().any(|a| a.type_code == t.code))
        .map(|t| format!("\n\nBefore each dosing visit: {}", t.instructions))
        .unwrap_or_default();
    let body = format!(
        "Hello {first},\n\nYour course of {n} visits is booked:\n\n{lines}{before}\n\n\
         {place}\n\nWe will remind you before each visit. To move or cancel one, call us on \
         {phone}. The attached file adds every visit to your calendar.\n\n\
         If you are in crisis, call or text 988 (Suicide & Crisis Lifeline), or call 911.\n\n{name}\n",
        first = to.first,
        n = visits.len(),
        lines = lines.join("\n"),
        place = crate::scheduling::Attend::InPerson.where_text(s),
        phone = s.phone,
        name = s.name,
    );
    let subject = format!("Your appointments at {} are confirmed", s.name);
    let ics = crate::feeds::patient_ics_of(&with, &to.clinic);
    deliver_with(
        state,
        &to,
        &subject,
        body,
        Some(ics),
        format!("sent ({} visits)", visits.len()),
    )
    .await
}

/// Makes the token an e-mail carries, as it is sent: the link keeps its
/// hash, the job never sees it. A retry makes a new one (the earlier
/// e-mail's link stops working; the newest always works). `None` when the
/// link was used or expired meanwhile.
async fn mail_token(
    state: &Clinic,
    table: LinkTable,
    link: &str,
) -> Result<Option<String>, String> {
    let token = crate::actor::random_token(32);
    let hash = crate::actor::secret_hash(&token);
    match state.store.set_mail_token(table, link, &hash).await {
        Ok(true) => Ok(Some(token)),
        Ok(false) => Ok(None),
        Err(e) => Err(format!("storing the link's e-mail token: {e}")),
    }
}

async fn questionnaire(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: LinkPayload = serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    if p.expires_at <= state.now() {
        return Ok("skipped: link expired before it was sent".into());
    }
    let to = match addressee(state, p.clinic_id, p.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let Some(token) = mail_token(state, LinkTable::Questionnaire, &p.link_id.to_string()).await?
    else {
        return Ok("skipped: link used or expired before it was sent".into());
    };
    let s = &to.clinic.settings;
    let body = format!(
        "Hello {first},\n\nYour care team asks you to answer a short questionnaire. It takes a \
         few minutes and helps us see how treatment is working for you.\n\n{base}/q/{token}\n\n\
         The link works once and until {until}.\n\nIf you are in crisis, call or text 988, or call \
         911.\n\n{name}\n",
        first = to.first,
        base = state.cfg.public_url.trim_end_matches('/'),
        until = clinic_time(p.expires_at, &to.clinic)?,
        name = s.name,
    );
    let subject = format!("A short questionnaire from {}", s.name);
    deliver(state, &to, &subject, body, "sent".into()).await
}

async fn patient_link(state: &Clinic, job: &Job) -> Result<String, String> {
    let p: PatientLinkPayload =
        serde_json::from_str(&job.payload).map_err(|e| format!("payload: {e}"))?;
    if p.expires_at <= state.now() {
        return Ok("skipped: link expired before it was sent".into());
    }
    let to = match addressee(state, p.clinic_id, p.patient_id).await? {
        Ok(to) => to,
        Err(skipped) => return Ok(skipped),
    };
    let s = &to.clinic.settings;
    let (ask, path, subject) = match p.purpose.as_str() {
        "portal" => (
            "Here is your link to sign in to your patient portal, where you can see your \
             visits, book a follow-up and cancel a visit you booked. If you did not ask for it, \
             you can ignore this e-mail.",
            "portal/in",
            format!("Your sign-in link for {}", s.name),
        ),
        "consent" => (
            "Please read the consent form for your treatment and, when you are ready, sign it \
             online. Take your time; call us with any question before you sign.",
            "consent",
            format!("A consent form from {}", s.name),
        ),
        _ => (
            "Before your first treatment we ask about your health, the treatments you have \
             tried and what helps you feel calm. The form takes about fifteen minutes.",
            "forms",
            format!("Your pre-treatment form from {}", s.name),
        ),
    };
    let table = if p.purpose == "portal" {
        LinkTable::Portal
    } else {
        LinkTable::Patient
    };
    let Some(token) = mail_token(state, table, &p.link_id).await? else {
        return Ok("skipped: link used or expired before it was sent".into());
    };
    let body = format!(
        "Hello {first},\n\n{ask}\n\n{base}/{path}/{token}\n\nThe link works once and until \
         {until}.\n\nIf you are in crisis, call or text 988, or call 911.\n\n{name}\n",
        first = to.first,
        base = state.cfg.public_url.trim_end_matches('/'),
        until = clinic_time(p.expires_at, &to.clinic)?,
        name = s.name,
    );
    deliver(state, &to, &subject, body, "sent".into()).await
}
