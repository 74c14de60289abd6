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
    /// The days the clinic is closed (for "open now").
    pub closed_on: Vec<Date>,
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

/// The caller's Today at each clinic where they hold a role, in a stable
/// order. The open safety tasks are read once for all of them (one audited
/// read) and shared out by clinic.
pub async fn all(state: &Clinic, caller: &Caller) -> Result<Vec<Today>, Error> {
    let clinics = clinics_of(caller);
    let prescribes = clinics
        .iter()
        .any(|k| roles_at(caller, *k).contains(&Role::Prescriber));
    let tasks = match prescribes {
        true => crate::measures::open_tasks(state, caller).await?,
        false => vec![],
    };
    let mut out = Vec::with_capacity(clinics.len());
    for k in clinics {
        out.push(of(state, caller, k, &tasks).await?);
    }
    Ok(out)
}

/// The clinics where the caller holds a role, in a stable order.
fn clinics_of(caller: &Caller) -> Vec<ClinicId> {
    let mut ids: Vec<ClinicId> = match &caller.principal {
        Principal::User { grants, .. } => grants.iter().map(|g| g.0).collect(),
        Principal::Device { .. } => vec![],
    };
    ids.sort();
    ids.dedup();
    ids
}

/// One clinic's Today for the caller (`tasks`: their open safety tasks at
/// every clinic); a clinic where they hold no role is forbidden.
async fn of(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    tasks: &[store::measures::Task],
) -> Result<Today, Error> {
    let roles = roles_at(caller, clinic);
    if roles.is_empty() {
        return Err(Error::Forbidden);
    }
    let (record, closures) = tokio::try_join!(
        crate::settings::record(state, clinic),
        crate::settings::closures(state, clinic)
    )?;
    let clock = record.settings.clock();
    let now = state.now();
    let date = clock.date(now);
    let has = |r: Role| roles.contains(&r);
    // The parts are independent reads: asked for at once, so the page
    // waits for the slowest, not for their sum.
    let desk = async {
        match has(Role::FrontDesk) {
            true => desk(state, caller, clinic, date).await.map(Some),
            false => Ok(None),
        }
    };
    let floor = async {
        match has(Role::Nurse) || has(Role::MonitoringClinician) {
            true => floor(state, caller, clinic, date, now).await.map(Some),
            false => Ok(None),
        }
    };
    let prescriber = async {
        match has(Role::Prescriber) {
            true => prescriber(state, caller, clinic, now, tasks)
                .await
                .map(Some),
            false => Ok(None),
        }
    };
    let sessions = async {
        let Some(me) = caller.user_id().filter(|_| has(Role::Therapist)) else {
            return Ok(None);
        };
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
        Ok::<_, Error>(Some(visits))
    };
    let admin = async {
        if !has(Role::ClinicAdmin) {
            return Ok(None);
        }
        let here = clinic.to_string();
        let (overview, close) = tokio::try_join!(
            crate::substances::overview(state, caller),
            crate::billing::day_close(state, caller, &here, "")
        )?;
        Ok::<_, Error>(Some(AdminDay {
            alerts: overview
                .alerts
                .into_iter()
                .filter(|a| a.clinic_id == here)
                .collect(),
            close,
        }))
    };
    let (desk, floor, prescriber, sessions, admin) =
        tokio::try_join!(desk, floor, prescriber, sessions, admin)?;
    Ok(Today {
        clinic: record,
        closed_on: closures.into_iter().map(|x| x.closed_on).collect(),
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
    let here = clinic.to_string();
    let may_bill = c.may(Permission::BillRead, clinic);
    let leads = async {
        if !c.may(Permission::LeadRead, clinic) {
            return Ok(vec![]);
        }
        crate::leads::list(state, c, Some(domain::leads::LeadStatus::New), 50).await
    };
    let due = async {
        match may_bill {
            true => Ok(state.store.billing_balances_due(&here).await?),
            false => Ok::<_, Error>(vec![]),
        }
    };
    let currency = async { Ok::<_, Error>(state.store.billing_settings(&here).await?) };
    let (mut visits, due, settings, leads, waitlist) = tokio::try_join!(
        crate::scheduling::day(state, c, clinic, date),
        due,
        currency,
        leads,
        crate::scheduling::waitlist(state, c, clinic, "today: waitlist offers"),
    )?;
    visits.retain(|a| a.status != Status::Cancelled);
    // Only the day's arrivals' balances are shown, and that read is audited.
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
    let owed: std::collections::HashMap<String, i64> = due.into_iter().collect();
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
    Ok(Desk {
        arrivals,
        currency: settings.map(|s| s.currency).unwrap_or_else(|| "USD".into()),
        new_leads: leads
            .into_iter()
            .filter(|l| l.clinic_id == clinic)
            .collect(),
        offers: waitlist
            .into_iter()
            .filter(|w| w.status == "offered")
            .collect(),
    })
}

async fn floor(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
    date: Date,
    now: i64,
) -> Result<FloorDay, Error> {
    let booked = async {
        if !c.may(Permission::ScheduleRead, clinic) {
            return Ok(None);
        }
        let (chairs, visits) = tokio::try_join!(
            crate::scheduling::resources(state, clinic),
            crate::scheduling::day(state, c, clinic, date)
        )?;
        Ok::<_, Error>(Some((chairs, visits)))
    };
    let (chairs, booked) = tokio::try_join!(crate::treatment::floor(state, c, clinic), booked)?;
    let mut next = vec![];
    if let Some((resources, visits)) = booked {
        let names: std::collections::HashMap<_, _> = resources
            .into_iter()
            .map(|r| (r.resource.id, r.resource.name))
            .collect();
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
    tasks: &[store::measures::Task],
) -> Result<PrescriberWork, Error> {
    c.require(Permission::DoseOrder, clinic)?;
    let (orders, notes, decisions) = tokio::try_join!(
        state.store.orders_to_write(clinic),
        state.store.notes_to_sign(clinic, now - 14 * DAY),
        state.store.decisions_waiting(clinic)
    )?;
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
    let tasks = tasks
        .iter()
        .filter(|t| t.clinic_id == clinic)
        .cloned()
        .collect();
    Ok(PrescriberWork {
        orders,
        notes,
        decisions,
        tasks,
    })
}
