//! Today: the first page after sign-in, one card per clinic the person
//! works at, with the parts their roles there call for
//! (`clinic::today`). Times are the clinic's, on its country's clock.

use askama::Template;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use clinic::records::scheduling::{Appointment, Status};
use clinic::today::{self, Today};
use domain::auth::Permission;
use domain::billing::fmt_money;
use domain::time::WallClock;

use crate::auth::{Caller, Staff};
use crate::ui::*;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    let clinics = today::all(&state, &c)
        .await?
        .into_iter()
        .map(|t| ClinicDay::of(&c, t))
        .collect();
    render(&TodayPage {
        layout: Layout::new(&c, "Today", "home"),
        can_search: !c.clinics_with(Permission::PatientRead).is_empty(),
        clinics,
    })
}

// ---- Views -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "today/today.html")]
pub struct TodayPage {
    pub layout: Layout,
    pub can_search: bool,
    pub clinics: Vec<ClinicDay>,
}

pub struct ClinicDay {
    pub id: String,
    pub name: String,
    pub date: String,
    pub local_time: String,
    pub open_now: bool,
    pub hours: String,
    pub roles: String,
    pub can_audit: bool,
    pub desk: Option<DeskView>,
    pub floor: Option<FloorView>,
    pub prescriber: Option<PrescriberView>,
    pub sessions: Option<Vec<VisitRow>>,
    pub admin: Option<AdminView>,
}

/// A visit in a list: its time, who, what, where it stands.
pub struct VisitRow {
    pub id: String,
    pub time: String,
    pub patient: String,
    pub patient_id: String,
    pub kind: String,
    pub status: &'static str,
    pub status_key: &'static str,
    pub status_class: &'static str,
    /// What the patient owes, formatted; empty when nothing.
    pub owes: String,
}

impl VisitRow {
    fn of(a: &Appointment, clock: &WallClock) -> VisitRow {
        VisitRow {
            id: a.id.to_string(),
            time: clock.time(a.starts_at),
            patient: format!("{} {}", a.patient_given, a.patient_family),
            patient_id: a.patient_id.to_string(),
            kind: a.type_name.clone(),
            status: a.status.label(),
            status_key: a.status.as_str(),
            status_class: visit_status_class(a.status),
            owes: String::new(),
        }
    }
}

pub struct DeskView {
    pub arrivals: Vec<VisitRow>,
    pub expected: usize,
    pub checked_in: usize,
    pub owing: usize,
    /// (lead id, name, what the self-assessment found, when it came).
    pub leads: Vec<(String, String, &'static str, String)>,
    /// (patient id, name, kind of visit, the slot offered).
    pub offers: Vec<(String, String, String, String)>,
}

pub struct ChairRow {
    pub encounter_id: String,
    pub chair: String,
    pub initials: String,
    pub phase: &'static str,
    pub phase_key: &'static str,
    pub due: String,
    pub overdue: bool,
    pub alerts: usize,
}

pub struct FloorView {
    pub chairs: Vec<ChairRow>,
    pub due: usize,
    /// (chair, time, patient, appointment id).
    pub next: Vec<(String, String, String, String)>,
}

/// One thing waiting on a prescriber: where to act, who, since when.
pub struct WorkRow {
    pub href: String,
    pub who: String,
    pub what: String,
    /// The chair, when the work is at one.
    pub place: String,
    pub since: String,
}

pub struct PrescriberView {
    pub orders: Vec<WorkRow>,
    pub notes: Vec<WorkRow>,
    pub decisions: Vec<WorkRow>,
    pub tasks: Vec<WorkRow>,
}

impl PrescriberView {
    pub fn total(&self) -> usize {
        self.orders.len() + self.notes.len() + self.decisions.len() + self.tasks.len()
    }
}

pub struct AdminView {
    /// (level: stop or warn, text).
    pub alerts: Vec<(&'static str, String)>,
    pub takings: String,
    pub payments: i64,
}

impl ClinicDay {
    fn of(c: &Caller, t: Today) -> ClinicDay {
        let clock = &t.clock;
        let s = &t.clinic.settings;
        let id = t.clinic.id;
        let desk = t.desk.map(|d| {
            let mut arrivals: Vec<VisitRow> = d
                .arrivals
                .iter()
                .map(|a| {
                    let mut row = VisitRow::of(&a.visit, clock);
                    if a.balance_due > 0 {
                        row.owes = fmt_money(a.balance_due, &d.currency);
                    }
                    row
                })
                .collect();
            arrivals.sort_by_key(|r| r.status_key != "booked");
            DeskView {
                expected: d.arrivals.iter().filter(|a| a.waiting()).count(),
                checked_in: d
                    .arrivals
                    .iter()
                    .filter(|a| a.visit.status == Status::CheckedIn)
                    .count(),
                owing: d.arrivals.iter().filter(|a| a.balance_due > 0).count(),
                arrivals,
                leads: d
                    .new_leads
                    .iter()
                    .map(|l| {
                        (
                            l.id.to_string(),
                            format!("{} {}", l.given_name, l.family_name),
                            crate::measures::pages::outcome_label(&l.outcome),
                            clock.day_time(l.created_at),
                        )
                    })
                    .collect(),
                offers: d
                    .offers
                    .iter()
                    .map(|w| {
                        (
                            w.patient_id.to_string(),
                            w.patient_name.clone(),
                            w.type_code.clone(),
                            w.offered_start
                                .map(|m| clock.day_time(m))
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            }
        });
        let floor = t.floor.map(|f| {
            let due = f.readings_due(t.now).len();
            FloorView {
                chairs: f
                    .chairs
                    .iter()
                    .filter(|k| k.phase != domain::treatment::Phase::Discharged)
                    .map(|k| ChairRow {
                        encounter_id: k.encounter_id.clone(),
                        chair: k.chair.clone(),
                        initials: k.initials.clone(),
                        phase: k.phase.label(),
                        phase_key: k.phase.key(),
                        due: k.next_due.map(|m| clock.time(m)).unwrap_or_default(),
                        overdue: k.next_due.is_some_and(|m| m < t.now),
                        alerts: k.open_alerts.len(),
                    })
                    .collect(),
                due,
                next: f
                    .next
                    .iter()
                    .map(|(chair, a)| {
                        (
                            chair.clone(),
                            clock.time(a.starts_at),
                            format!("{} {}", a.patient_given, a.patient_family),
                            a.id.to_string(),
                        )
                    })
                    .collect(),
            }
        });
        let prescriber = t.prescriber.map(|p| {
            let visit = |e: &clinic::records::treatment::Encounter, what: &str, at: i64| WorkRow {
                href: format!("/encounters/{}", e.id),
                who: format!("{} {}", e.given_name, e.family_name),
                what: what.into(),
                place: e.chair.clone().unwrap_or_default(),
                since: clock.day_time(at),
            };
            PrescriberView {
                orders: p
                    .orders
                    .iter()
                    .map(|e| visit(e, "Dose order to write", e.opened_at))
                    .collect(),
                notes: p
                    .notes
                    .iter()
                    .map(|e| {
                        visit(
                            e,
                            "Session note to sign",
                            e.discharged_at.unwrap_or(e.opened_at),
                        )
                    })
                    .collect(),
                decisions: p
                    .decisions
                    .iter()
                    .map(|d| WorkRow {
                        href: format!("/patients/{}/eligibility", d.patient_id),
                        who: format!("{} {}", d.given, d.family),
                        what: "Eligibility to decide".into(),
                        place: String::new(),
                        since: clock.day_time(d.assessed_at),
                    })
                    .collect(),
                tasks: p
                    .tasks
                    .iter()
                    .map(|k| WorkRow {
                        href: "/tasks".into(),
                        who: k.subject_name.clone(),
                        what: k.title.clone(),
                        place: String::new(),
                        since: clock.day_time(k.opened_at),
                    })
                    .collect(),
            }
        });
        let admin = t.admin.map(|a| AdminView {
            alerts: a.alerts.iter().map(|x| (x.level, x.text.clone())).collect(),
            takings: fmt_money(a.close.total, &a.close.currency),
            payments: a.close.methods.iter().map(|m| m.4).sum(),
        });
        ClinicDay {
            id: id.to_string(),
            name: s.name.clone(),
            date: clock.zoned(t.now).strftime("%A, %B %-d").to_string(),
            local_time: clock.time(t.now),
            open_now: domain::clinics::is_open_at(
                domain::time::to_timestamp(t.now),
                clock.zone(),
                &s.hours,
                &t.closed_on,
            ),
            hours: s.hours_summary(),
            roles: t
                .roles
                .iter()
                .map(|r| r.label())
                .collect::<Vec<_>>()
                .join(", "),
            can_audit: c.may(Permission::AuditRead, id),
            desk,
            floor,
            prescriber,
            sessions: t
                .sessions
                .map(|v| v.iter().map(|a| VisitRow::of(a, clock)).collect()),
            admin,
        }
    }
}
