//! iCalendar (RFC 5545) feeds per staff member and per chair, behind
//! unguessable tokens that can be revoked. Patients appear by initials only;
//! each event's UID is the visit's id, SEQUENCE rises with every change, and
//! cancelled visits stay in the feed as CANCELLED so calendars remove them.

use chrono::{DateTime, Utc};
use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{ClinicId, FeedId, ResourceId, UserId};
use icalendar::{Calendar, Component, EventLike, EventStatus};
use store::scheduling::{Appointment, Status};

use crate::actor::{random_token, secret_hash, Caller};
use crate::error::Error;
use crate::Clinic;

const DAY: i64 = 86_400_000_000;

/// Creates a feed for one person or one chair/room of a clinic. Anyone who
/// can see the schedule may make a feed of their own; a feed of someone else
/// or of a chair needs schedule management.
pub async fn create(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    staff: Option<UserId>,
    resource: Option<ResourceId>,
) -> Result<(String, FeedId), Error> {
    let (kind, subject, label) = match (staff, resource) {
        (Some(u), None) => {
            if caller.user_id() == Some(u) {
                caller.require(Permission::ScheduleRead, clinic)?;
            } else {
                caller.require(Permission::ScheduleManage, clinic)?;
            }
            let s = state
                .store
                .bookable_staff(clinic, 0, 1)
                .await?
                .into_iter()
                .find(|s| s.id == u)
                .ok_or_else(|| {
                    Error::Invalid(vec![domain::FieldError::new(
                        "staff_id",
                        "is not bookable staff of this clinic",
                    )])
                })?;
            ("staff", u.to_string(), s.name)
        }
        (None, Some(r)) => {
            caller.require(Permission::ScheduleManage, clinic)?;
            let res = state
                .store
                .resources(clinic)
                .await?
                .into_iter()
                .find(|x| x.resource.id == r)
                .ok_or_else(|| {
                    Error::Invalid(vec![domain::FieldError::new(
                        "resource_id",
                        "is not a chair or room of this clinic",
                    )])
                })?;
            ("resource", r.to_string(), res.resource.name)
        }
        _ => {
            return Err(Error::Invalid(vec![domain::FieldError::new(
                "staff_id",
                "give exactly one of staff_id and resource_id",
            )]))
        }
    };
    let token = random_token(32);
    let mut ev = caller.event(Action::FeedCreate);
    ev.clinic_id = Some(clinic.to_string());
    ev.detail = Some(format!("{kind} {subject}"));
    let id = state
        .store
        .create_feed(
            clinic,
            kind,
            &subject,
            &label,
            &secret_hash(&token),
            caller.user_id(),
            ev,
        )
        .await?;
    Ok((format!("/calendar/{token}.ics"), id))
}

/// Revokes a feed: its link stops working at once. The person it belongs
/// to may revoke it, as may anyone who manages the clinic's schedule.
pub async fn revoke(state: &Clinic, caller: &Caller, id: FeedId) -> Result<(), Error> {
    let clinics = caller.require_any(Permission::ScheduleRead)?;
    for clinic in clinics {
        let Some(f) = state
            .store
            .feeds(clinic)
            .await?
            .into_iter()
            .find(|f| f.id == id)
        else {
            continue;
        };
        let own = f.subject_kind == "staff"
            && caller.user_id().map(|u| u.to_string()) == Some(f.subject_id.clone());
        if !own {
            caller.require(Permission::ScheduleManage, clinic)?;
        }
        let mut ev = caller.event(Action::FeedRevoke);
        ev.clinic_id = Some(clinic.to_string());
        ev.object_type = Some("calendar_feed".into());
        ev.object_id = Some(id.to_string());
        state.store.revoke_feed(clinic, id, ev).await?;
        return Ok(());
    }
    Err(Error::NotFound)
}

/// The calendar of a feed's `file` (`{token}.ics`), as iCalendar text. An
/// unknown, malformed or revoked token is not found. Each reading is
/// audited under `request_id`.
pub async fn render(state: &Clinic, file: &str, request_id: String) -> Result<String, Error> {
    let token = file.strip_suffix(".ics").ok_or(Error::NotFound)?;
    if token.len() < 20
        || token.len() > 100
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::NotFound);
    }
    let feed = state
        .store
        .feed_by_token_hash(&secret_hash(token))
        .await?
        .filter(|f| f.revoked_at.is_none())
        .ok_or(Error::NotFound)?;
    let now = state.now();
    let (from, to) = (now - 60 * DAY, now + 200 * DAY);
    let appts = match feed.subject_kind.as_str() {
        "staff" => {
            let u: UserId = feed.subject_id.parse().map_err(|_| Error::NotFound)?;
            state.store.staff_appointments(u, from, to).await?
        }
        _ => {
            let r: ResourceId = feed.subject_id.parse().map_err(|_| Error::NotFound)?;
            state.store.resource_appointments(r, from, to).await?
        }
    };
    let resources = state.store.resources(feed.clinic_id).await?;
    let clinic = state.store.clinic(feed.clinic_id).await?;
    let mut ev =
        store::audit::NewAuditEvent::new(Action::FeedRead, format!("calendar_feed:{}", feed.id));
    ev.org_id = Some(clinic.org_id.to_string());
    ev.clinic_id = Some(feed.clinic_id.to_string());
    ev.object_type = Some("calendar_feed".into());
    ev.object_id = Some(feed.id.to_string());
    ev.request_id = Some(request_id);
    let mut patients: Vec<String> = appts.iter().map(|a| a.patient_id.to_string()).collect();
    patients.sort();
    patients.dedup();
    ev.detail = Some(format!(
        "{} visit(s), initials only; patients {}",
        appts.len(),
        patients.join(",")
    ));
    state.store.audit(vec![ev]).await?;

    let name = |r: Option<ResourceId>| {
        r.and_then(|r| resources.iter().find(|x| x.resource.id == r))
            .map(|x| x.resource.name.clone())
            .unwrap_or_default()
    };
    let mut cal = Calendar::new();
    cal.name(&format!("{} · {}", feed.label, clinic.settings.name));
    cal.timezone(clinic.settings.time_zone.as_str());
    for a in &appts {
        cal.push(event(a, &name(a.resource_id), &clinic.settings.time_zone));
    }
    Ok(cal.done().to_string())
}

fn utc(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

fn event(a: &Appointment, place: &str, zone: &str) -> icalendar::Event {
    let mut e = icalendar::Event::new();
    let phases: Vec<String> = a
        .plan
        .phases
        .iter()
        .map(|p| {
            format!(
                "{} {}-{}",
                p.kind.label(),
                hm(p.start, zone),
                hm(p.end, zone)
            )
        })
        .collect();
    e.uid(&format!("{}@stillwater", a.id))
        .sequence(a.sequence.max(0) as u32)
        .summary(&format!("{} · {}", a.type_name, a.initials()))
        .description(&phases.join("\n"))
        .starts(utc(a.starts_at))
        .ends(utc(a.ends_at))
        .timestamp(utc(a.updated_at))
        .last_modified(utc(a.updated_at))
        .created(utc(a.created_at))
        .status(match a.status {
            Status::Cancelled | Status::NoShow => EventStatus::Cancelled,
            _ => EventStatus::Confirmed,
        });
    if !place.is_empty() {
        e.location(place);
    }
    e.done()
}

/// The calendar file a patient's confirmation carries: one visit, named by
/// its kind and the clinic (nothing about the treatment beyond that), at
/// the clinic's address, with how to reach it.
pub fn patient_ics(
    a: &Appointment,
    clinic: &store::org::Clinic,
    attend: &crate::scheduling::Attend,
) -> String {
    patient_ics_of(&[(a, attend.clone())], clinic)
}

/// A patient's calendar file of several visits (a booked course).
pub fn patient_ics_of(
    visits: &[(&Appointment, crate::scheduling::Attend)],
    clinic: &store::org::Clinic,
) -> String {
    let s = &clinic.settings;
    let mut cal = Calendar::new();
    cal.name(&s.name);
    for (a, attend) in visits {
        cal.push(visit_event(a, clinic, attend));
    }
    cal.done().to_string()
}

/// One visit as a patient's calendar event: where (the address, or the
/// video link) and how to move or cancel.
fn visit_event(
    a: &Appointment,
    clinic: &store::org::Clinic,
    attend: &crate::scheduling::Attend,
) -> icalendar::Event {
    let s = &clinic.settings;
    let address = s.address_lines().join(", ");
    let mut e = icalendar::Event::new();
    let cancel = format!("To move or cancel, call {} on {}.", s.name, s.phone);
    e.uid(&format!("{}@stillwater", a.id))
        .sequence(a.sequence.max(0) as u32)
        .summary(&format!("{} at {}", a.type_name, s.name));
    match attend {
        crate::scheduling::Attend::InPerson => {
            e.description(&cancel)
                .location(&format!("{}, {address}", s.name));
        }
        crate::scheduling::Attend::Video(Some(link)) => {
            e.description(&format!("By video: join at {link}\n{cancel}"))
                .location(link)
                .url(link);
        }
        crate::scheduling::Attend::Video(None) => {
            e.description(&format!(
                "By video: the clinic sends the link to join before the visit.\n{cancel}"
            ))
            .location("Video visit");
        }
    }
    e.starts(utc(a.starts_at))
        .ends(utc(a.ends_at))
        .timestamp(utc(a.updated_at))
        .created(utc(a.created_at))
        .status(EventStatus::Confirmed);
    e.done()
}

fn hm(m: i64, zone: &str) -> String {
    let ts = domain::time::to_timestamp(m);
    match jiff::tz::TimeZone::get(zone) {
        Ok(tz) => ts.to_zoned(tz).strftime("%H:%M").to_string(),
        Err(_) => ts.strftime("%H:%M UTC").to_string(),
    }
}
