//! Today: what each person at a clinic must see first when they sign in,
//! by the roles they hold there. The front desk sees the day's arrivals with
//! what they owe, the new leads and the waitlist's offers; nurses and
//! monitoring clinicians the floor and each chair's next patient;
//! prescribers the orders, notes and eligibility decisions waiting on them
//! and the open safety tasks; therapists their own sessions; admins the
//! Schedule III record's alerts and the day's takings. Every part is read
//! through the use case that owns it, so it is checked and audited as it is
//! on its own page.

use domain::audit::Action;
use domain::auth::{Permission, Principal, Role};
use domain::ids::ClinicId;
use domain::time::WallClock;
use jiff::civil::Date;

use crate::actor::Caller;
use crate::records::org::Clinic as ClinicRecord;
use crate::records::scheduling::{Appointment, Status, WaitEntry};
use crate::{Clinic, Error};

/// One clinic's day for one person.
pub struct Today {
    pub clinic: ClinicRecord,
    pub clock: WallClock,
    pub date: Date,
    pub now: i64,
    /// The roles the caller holds at this clinic.
    pub roles: Vec<Role>,
    pub desk: Option<Desk>,
    pub floor: Option<FloorDay>,
    pub prescriber: Option<PrescriberWork>,
    /// A therapist's own visits of the day.
    pub sessions: Option<Vec<Appointment>>,
    pub admin: Option<AdminDay>,
}

/// The front desk's day.
pub struct Desk {
    /// The day's visits not cancelled, in order, with what each patient owes.
    pub arrivals: Vec<Arrival>,
    pub currency: String,
    /// Leads from the public self-assessment nobody has contacted yet.
    pub new_leads: Vec<store::leads::Lead>,
    /// Freed slots offered to patients on the waitlist, awaiting an answer.
    pub offers: Vec<WaitEntry>,
}

pub struct Arrival {
    pub visit: Appointment,
    /// Across the patient's open invoices at this clinic, in minor units.
    pub balance_due: i64,
}

impl Arrival {
    pub fn waiting(&self) -> bool {
        self.visit.status == Status::Booked
    }
}

/// The floor for nurses and monitoring clinicians.
pub struct FloorDay {
    pub chairs: Vec<crate::treatment::ChairCard>,
    /// Each chair's next booked patient (chair name, visit).
    pub next: Vec<(String, Appointment)>,
}

impl FloorDay {
    /// Chairs whose next reading is due within five minutes or overdue.
    pub fn readings_due(&self, now: i64) -> Vec<&crate::treatment::ChairCard> {
        self.chairs
            .iter()
            .filter(|c| c.next_due.is_some_and(|t| t <= now + 5 * 60 * 1_000_000))
            .collect()
    }
}

/// What waits on a prescriber.
pub struct PrescriberWork {
    /// Open visits without a standing dose order.
    pub orders: Vec<store::treatment::Encounter>,
    /// Visits of the last fortnight ended without a signed note.
    pub notes: Vec<store::treatment::Encounter>,
    /// Patients assessed since their last eligibility decision.
    pub decisions: Vec<store::eligibility::Waiting>,
    pub tasks: Vec<store::measures::Task>,
}

pub struct AdminDay {
    /// The Schedule III record's alerts at this clinic: registrations near
    /// expiry, counts not done, open draws, cases.
    pub alerts: Vec<crate::substances::CsAlert>,
    pub close: crate::billing::DayClose,
}

const DAY: i64 = 24 * 60 * 60 * 1_000_000;

/// The roles `caller` holds at `clinic`.
pub fn roles_at(caller: &Caller, clinic: ClinicId) -> Vec<Role> {
    let mut roles: Vec<Role> = match &caller.principal {
        Principal::User { grants, .. } => grants
            .iter()
            .filter(|g| g.0 == clinic)
            .map(|g| g.1)
            .collect(),
        Principal::Device { .. } => vec![],
    };
    roles.sort_by_key(|r| Role::ALL.iter().position(|x| x == r));
    roles.dedup();
    roles
}

/// The clinics where the caller holds a role, in a stable order.
pub fn clinics_of(caller: &Caller) -> Vec<ClinicId> {
    let mut ids: Vec<ClinicId> = match &caller.principal {
        Principal::User { grants, .. } => grants.iter().map(|g| g.0).collect(),
        Principal::Device { .. } => vec![],
    };
    ids.sort();
    ids.dedup();
    ids
}

/// One clinic's Today for the caller; a clinic where they hold no role is
/// forbidden.
pub async fn of(state: &Clinic, caller: &Caller, clinic: ClinicId) -> Result<Today, Error> {
    let roles = roles_at(caller, clinic);
    if roles.is_empty() {
        return Err(Error::Forbidden);
    }
    let record = crate::settings::record(state, clinic).await?;
    let clock = record.settings.clock();
    let now = state.now();
    let date = clock.date(now);
    let has = |r: Role| roles.contains(&r);
    let desk = if has(Role::FrontDesk) {
        Some(desk(state, caller, clinic, date).await?)
    } else {
        None
    };
    let floor = if has(Role::Nurse) || has(Role::MonitoringClinician) {
        Some(floor(state, caller, clinic, date, now).await?)
    } else {
        None
    };
    let prescriber = if has(Role::Prescriber) {
        Some(prescriber(state, caller, clinic, now).await?)
    } else {
        None
    };
    let sessions = match caller.user_id() {
        Some(me) if has(Role::Therapist) => {
            let from = crate::scheduling::micros_of(clock.zone(), date);
            let to = crate::scheduling::micros_of(clock.zone(), date.tomorrow().unwrap_or(date));
            let mut visits = crate::scheduling::staff_visits(
                state,
                caller,
                clinic,
                me,
                (from, to),
                "today: my sessions",
            )
            .await?;
            visits.retain(|a| a.status != Status::Cancelled);
            Some(visits)
        }
        _ => None,
    };
    let admin = if has(Role::ClinicAdmin) {
        let overview = crate::substances::overview(state, caller).await?;
        let here = clinic.to_string();
        Some(AdminDay {
            alerts: overview
                .alerts
                .into_iter()
                .filter(|a| a.clinic_id == here)
                .collect(),
            close: crate::billing::day_close(state, caller, &here, "").await?,
        })
    } else {
        None
    };
    Ok(Today {
        clinic: record,
        clock,
        date,
        now,
        roles,
        desk,
        floor,
        prescriber,
        sessions,
        admin,
    })
}

async fn desk(state: &Clinic, c: &Caller, clinic: ClinicId, date: Date) -> Result<Desk, Error> {
    let mut visits = crate::scheduling::day(state, c, clinic, date).await?;
    visits.retain(|a| a.status != Status::Cancelled);
    let here = clinic.to_string();
    let owed: std::collections::HashMap<String, i64> = if c.may(Permission::BillRead, clinic) {
        let due = state.store.billing_balances_due(&here).await?;
        let arriving: Vec<String> = visits.iter().map(|a| a.patient_id.to_string()).collect();
        let due: Vec<(String, i64)> = due
            .into_iter()
            .filter(|(p, _)| arriving.contains(p))
            .collect();
        if !due.is_empty() {
            let mut ev = c.event(Action::BillRead);
            ev.clinic_id = Some(here.clone());
            ev.actor_role = c
                .principal
                .acting_role(Permission::BillRead, clinic)
                .map(|r| r.as_str().to_string());
            ev.object_type = Some("balance".into());
            ev.detail = Some(format!(
                "today: balances due of the day's arrivals; patients {}",
                due.iter()
                    .map(|d| d.0.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            state.store.audit(vec![ev]).await?;
        }
        due.into_iter().collect()
    } else {
        Default::default()
    };
    let currency = state
        .store
        .billing_settings(&here)
        .await?
        .map(|s| s.currency)
        .unwrap_or_else(|| "USD".into());
    let arrivals = visits
        .into_iter()
        .map(|visit| Arrival {
            balance_due: owed
                .get(&visit.patient_id.to_string())
                .copied()
                .unwrap_or(0),
            visit,
        })
        .collect();
    let new_leads = if c.may(Permission::LeadRead, clinic) {
        crate::leads::list(state, c, Some(domain::leads::LeadStatus::New), 50)
            .await?
            .into_iter()
            .filter(|l| l.clinic_id == clinic)
            .collect()
    } else {
        vec![]
    };
    let offers = crate::scheduling::waitlist(state, c, clinic, "today: waitlist offers")
        .await?
        .into_iter()
        .filter(|w| w.status == "offered")
        .collect();
    Ok(Desk {
        arrivals,
        currency,
        new_leads,
        offers,
    })
}

async fn floor(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
    date: Date,
    now: i64,
) -> Result<FloorDay, Error> {
    let chairs = crate::treatment::floor(state, c, clinic).await?;
    let mut next = vec![];
    if c.may(Permission::ScheduleRead, clinic) {
        let names: std::collections::HashMap<_, _> = crate::scheduling::resources(state, clinic)
            .await?
            .into_iter()
            .map(|r| (r.resource.id, r.resource.name))
            .collect();
        let visits = crate::scheduling::day(state, c, clinic, date).await?;
        let mut seen = std::collections::HashSet::new();
        for v in visits {
            let Some(chair) = v.resource_id else { continue };
            if v.status == Status::Booked && v.ends_at > now && seen.insert(chair) {
                let name = names.get(&chair).cloned().unwrap_or_default();
                next.push((name, v));
            }
        }
        next.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(FloorDay { chairs, next })
}

async fn prescriber(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
    now: i64,
) -> Result<PrescriberWork, Error> {
    c.require(Permission::DoseOrder, clinic)?;
    let orders = state.store.orders_to_write(clinic).await?;
    let notes = state.store.notes_to_sign(clinic, now - 14 * DAY).await?;
    let decisions = state.store.decisions_waiting(clinic).await?;
    let mut patients: Vec<String> = orders
        .iter()
        .chain(notes.iter())
        .map(|e| e.patient_id.clone())
        .chain(decisions.iter().map(|d| d.patient_id.to_string()))
        .collect();
    patients.sort();
    patients.dedup();
    if !patients.is_empty() {
        let mut ev = c.event(Action::EncounterRead);
        ev.clinic_id = Some(clinic.to_string());
        ev.actor_role = Some(Role::Prescriber.as_str().into());
        ev.object_type = Some("prescriber_queue".into());
        ev.detail = Some(format!(
            "today: {} orders, {} notes, {} eligibility decisions waiting; patients {}",
            orders.len(),
            notes.len(),
            decisions.len(),
            patients.join(",")
        ));
        state.store.audit(vec![ev]).await?;
    }
    let tasks = crate::measures::open_tasks(state, c)
        .await?
        .into_iter()
        .filter(|t| t.clinic_id == clinic)
        .collect();
    Ok(PrescriberWork {
        orders,
        notes,
        decisions,
        tasks,
    })
}
