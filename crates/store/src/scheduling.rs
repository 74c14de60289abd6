//! Scheduling storage: chairs and rooms, appointment types, staff hours and
//! time off, visits and series, and the slot claims whose primary key makes a
//! double booking impossible under any concurrency.

use domain::auth::Role;
use domain::clinics::DayHours;
use domain::ids::{AppointmentId, ClinicId, FeedId, PatientId, ResourceId, SeriesId, UserId};
use domain::scheduling::{
    footprint, seats_for, AppointmentType, Calendar, Capabilities, Claim, CourseSpec, Key,
    Occupancy, Resource, ResourceKind, SchedulingRules, StaffMember, Use, VisitPlan,
    BOOKABLE_ROLES,
};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::org::parse_id;
use crate::{append_in_tx, is_unique_violation, on_pool, placeholders, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    pub resource: Resource,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Booked,
    CheckedIn,
    Completed,
    Cancelled,
    NoShow,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Booked => "booked",
            Status::CheckedIn => "checked_in",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::NoShow => "no_show",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Booked,
            Status::CheckedIn,
            Status::Completed,
            Status::Cancelled,
            Status::NoShow,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            Status::Booked => "Booked",
            Status::CheckedIn => "Checked in",
            Status::Completed => "Completed",
            Status::Cancelled => "Cancelled",
            Status::NoShow => "No-show",
        }
    }
    /// Whether the visit still holds its time.
    pub fn holds_time(self) -> bool {
        matches!(self, Status::Booked | Status::CheckedIn | Status::Completed)
    }
}

/// A visit as stored, with the patient's name for calendars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: AppointmentId,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub patient_given: String,
    pub patient_family: String,
    pub type_code: String,
    pub type_name: String,
    pub series_id: Option<SeriesId>,
    pub series_index: Option<i32>,
    pub series_role: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub status: Status,
    pub resource_id: Option<ResourceId>,
    pub plan: VisitPlan,
    pub sequence: i32,
    pub cancel_reason: Option<String>,
    pub late_cancel: bool,
    /// The patient booked it in the portal.
    pub self_booked: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Appointment {
    /// "A.L." — what a calendar feed or a shared screen shows.
    pub fn initials(&self) -> String {
        let i = |s: &str| {
            s.chars()
                .next()
                .map(|c| c.to_uppercase().to_string())
                .unwrap_or_default()
        };
        format!("{}.{}.", i(&self.patient_given), i(&self.patient_family))
    }
}

#[derive(sqlx::FromRow)]
struct AppointmentRow {
    id: String,
    clinic_id: String,
    patient_id: String,
    given_name: String,
    family_name: String,
    type_code: String,
    type_name: String,
    series_id: Option<String>,
    series_index: Option<i32>,
    series_role: Option<String>,
    starts_at: i64,
    ends_at: i64,
    status: String,
    resource_id: Option<String>,
    plan: String,
    sequence: i32,
    cancel_reason: Option<String>,
    late_cancel: bool,
    self_booked: bool,
    created_at: i64,
    updated_at: i64,
}

const APPT_COLUMNS: &str =
    "a.id, a.clinic_id, a.patient_id, p.given_name, p.family_name, a.type_code, \
     a.type_name, a.series_id, a.series_index, a.series_role, a.starts_at, a.ends_at, a.status, \
     a.resource_id, a.plan, a.sequence, a.cancel_reason, a.late_cancel, a.self_booked, a.created_at, a.updated_at";

impl AppointmentRow {
    fn into_appointment(self) -> Result<Appointment> {
        let plan: VisitPlan = serde_json::from_str(&self.plan).map_err(|e| {
            crate::StoreError::Db(sqlx::Error::Decode(format!("stored plan: {e}").into()))
        })?;
        Ok(Appointment {
            id: parse_id(&self.id)?,
            clinic_id: parse_id(&self.clinic_id)?,
            patient_id: parse_id(&self.patient_id)?,
            patient_given: self.given_name,
            patient_family: self.family_name,
            type_code: self.type_code,
            type_name: self.type_name,
            series_id: self.series_id.as_deref().map(parse_id).transpose()?,
            series_index: self.series_index,
            series_role: self.series_role,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            status: Status::parse(&self.status).unwrap_or(Status::Booked),
            resource_id: self.resource_id.as_deref().map(parse_id).transpose()?,
            plan,
            sequence: self.sequence,
            cancel_reason: self.cancel_reason,
            late_cancel: self.late_cancel,
            self_booked: self.self_booked,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A visit to insert: its plan and its claims, computed by the caller
/// against a calendar it loaded.
#[derive(Debug, Clone)]
pub struct NewVisit {
    pub id: AppointmentId,
    pub type_name: String,
    pub plan: VisitPlan,
    pub claims: Vec<Claim>,
    pub series_index: Option<i32>,
    pub series_role: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct NewSeries {
    pub id: SeriesId,
    pub spec: CourseSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: FeedId,
    pub clinic_id: ClinicId,
    pub subject_kind: String,
    pub subject_id: String,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn decode(msg: String) -> crate::StoreError {
    crate::StoreError::Db(sqlx::Error::Decode(msg.into()))
}

/// Who other than staff made a booking.
#[derive(Clone, Copy)]
enum Booked<'a> {
    /// A lead booking its consultation from the public pages.
    Lead(&'a crate::leads::LeadBooking),
    /// A signed-in patient in the portal.
    Portal,
}

/// The conflict a booking meets when another transaction took a seat first.
fn taken() -> crate::StoreError {
    DomainError::Conflict("that time was just taken by another booking; choose another time".into())
        .into()
}

fn is_claim_violation(e: &sqlx::Error) -> bool {
    is_unique_violation(e, "slot_claims")
}

impl Store {
    // ---- Rules -------------------------------------------------------

    pub async fn scheduling_rules(&self, clinic: ClinicId) -> Result<SchedulingRules> {
        type Row = (i32, i32, i32, i32, i32, i32);
        let r: Option<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT nurse_ratio, monitor_ratio, slot_step_min, min_notice_min, horizon_days, late_cancel_hours \
                 FROM scheduling_rules WHERE clinic_id = $1")
                .bind(clinic.to_string()).fetch_optional(p).await?
        });
        Ok(match r {
            None => SchedulingRules::default(),
            Some((n, m, s, notice, h, late)) => SchedulingRules {
                nurse_ratio: n.clamp(1, 8) as u8,
                monitor_ratio: m.clamp(1, 8) as u8,
                slot_step_min: s.clamp(5, 60) as u16,
                min_notice_min: notice.max(0) as u32,
                horizon_days: h.clamp(1, 730) as u16,
                late_cancel_hours: late.clamp(0, 168) as u16,
            },
        })
    }

    pub async fn set_scheduling_rules(
        &self,
        clinic: ClinicId,
        r: &SchedulingRules,
        audit: NewAuditEvent,
    ) -> Result<()> {
        r.validate()?;
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO scheduling_rules (clinic_id, nurse_ratio, monitor_ratio, slot_step_min, \
                 min_notice_min, horizon_days, late_cancel_hours, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (clinic_id) DO UPDATE SET nurse_ratio = excluded.nurse_ratio, \
                 monitor_ratio = excluded.monitor_ratio, slot_step_min = excluded.slot_step_min, \
                 min_notice_min = excluded.min_notice_min, horizon_days = excluded.horizon_days, \
                 late_cancel_hours = excluded.late_cancel_hours, updated_at = excluded.updated_at")
                .bind(clinic.to_string()).bind(i32::from(r.nurse_ratio)).bind(i32::from(r.monitor_ratio))
                .bind(i32::from(r.slot_step_min)).bind(r.min_notice_min as i32).bind(i32::from(r.horizon_days))
                .bind(i32::from(r.late_cancel_hours)).bind(self.now())
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- Resources ---------------------------------------------------

    pub async fn resources(&self, clinic: ClinicId) -> Result<Vec<ResourceRecord>> {
        type Row = (String, String, String, bool, bool, bool, bool);
        let rows: Vec<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, kind, name, iv, monitored, private, active FROM resources \
                 WHERE clinic_id = $1 ORDER BY kind, name")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(id, kind, name, iv, monitored, private, active)| {
                Ok(ResourceRecord {
                    resource: Resource {
                        id: parse_id(&id)?,
                        kind: ResourceKind::parse(&kind).map_err(|e| decode(e.message))?,
                        name,
                        caps: Capabilities {
                            iv,
                            monitored,
                            private,
                        },
                    },
                    active,
                })
            })
            .collect()
    }

    pub async fn create_resource(
        &self,
        clinic: ClinicId,
        kind: ResourceKind,
        name: &str,
        caps: Capabilities,
        audit: NewAuditEvent,
    ) -> Result<ResourceId> {
        let id = ResourceId::new();
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO resources (id, clinic_id, kind, name, iv, monitored, private, active, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8)")
                .bind(id.to_string()).bind(clinic.to_string()).bind(kind.as_str()).bind(name)
                .bind(caps.iv).bind(caps.monitored).bind(caps.private).bind(self.now())
                .execute(&mut *tx).await?;
            let mut ev = audit;
            ev.object_type = Some("resource".into());
            ev.object_id = Some(id.to_string());
            append_in_tx!(tx, &[ev], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e))
                if is_unique_violation(&e, "resources") || is_unique_violation(&e, "name") =>
            {
                Err(DomainError::field(
                    "name",
                    "another chair or room of this clinic has this name",
                )
                .into())
            }
            other => other.map(|_| id),
        }
    }

    pub async fn set_resource_active(
        &self,
        clinic: ClinicId,
        id: ResourceId,
        active: bool,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE resources SET active = $3 WHERE id = $1 AND clinic_id = $2")
                .bind(id.to_string()).bind(clinic.to_string()).bind(active)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- Appointment types ---------------------------------------------

    /// The clinic's appointment types; a clinic without any gets the defaults.
    pub async fn appointment_types(&self, clinic: ClinicId) -> Result<Vec<AppointmentType>> {
        let rows: Vec<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT definition FROM appointment_types WHERE clinic_id = $1 AND active ORDER BY name")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        if rows.is_empty() {
            self.install_default_types(clinic).await?;
            return Ok(AppointmentType::defaults());
        }
        rows.into_iter()
            .map(|(d,)| {
                let t: AppointmentType = serde_json::from_str(&d)
                    .map_err(|e| decode(format!("stored appointment type: {e}")))?;
                t.validate()
                    .map_err(|e| decode(format!("stored appointment type: {e}")))?;
                Ok(t)
            })
            .collect()
    }

    /// Adds any default appointment type the clinic lacks (by code).
    pub async fn install_default_types(&self, clinic: ClinicId) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            for t in AppointmentType::defaults() {
                let json = serde_json::to_string(&t).map_err(|e| decode(e.to_string()))?;
                sqlx::query("INSERT INTO appointment_types (id, clinic_id, code, name, definition, active, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, TRUE, $6) ON CONFLICT (clinic_id, code) DO NOTHING")
                    .bind(domain::ids::AppointmentTypeId::new().to_string()).bind(clinic.to_string())
                    .bind(&t.code).bind(&t.name).bind(json).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Creates or replaces a type (by code).
    pub async fn save_appointment_type(
        &self,
        clinic: ClinicId,
        t: &AppointmentType,
        audit: NewAuditEvent,
    ) -> Result<()> {
        t.validate()?;
        let json = serde_json::to_string(t).map_err(|e| decode(e.to_string()))?;
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO appointment_types (id, clinic_id, code, name, definition, active, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, TRUE, $6) ON CONFLICT (clinic_id, code) DO UPDATE SET \
                 name = excluded.name, definition = excluded.definition, active = TRUE, updated_at = excluded.updated_at")
                .bind(domain::ids::AppointmentTypeId::new().to_string()).bind(clinic.to_string())
                .bind(&t.code).bind(&t.name).bind(json).bind(self.now())
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- Staff hours and time off ------------------------------------------

    pub async fn set_staff_hours(
        &self,
        user: UserId,
        clinic: ClinicId,
        hours: &[DayHours],
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM staff_hours WHERE user_id = $1 AND clinic_id = $2")
                .bind(user.to_string()).bind(clinic.to_string()).execute(&mut *tx).await?;
            for h in hours {
                sqlx::query("INSERT INTO staff_hours (user_id, clinic_id, weekday, start_min, end_min) VALUES ($1, $2, $3, $4, $5)")
                    .bind(user.to_string()).bind(clinic.to_string()).bind(i32::from(h.weekday))
                    .bind(h.opens_min).bind(h.closes_min)
                    .execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn add_time_off(
        &self,
        user: UserId,
        from: i64,
        to: i64,
        reason: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        if from >= to {
            return Err(DomainError::field("ends_at", "must be after the start").into());
        }
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO staff_time_off (id, user_id, starts_at, ends_at, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(user.to_string()).bind(from).bind(to)
                .bind(reason).bind(self.now())
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// People of a clinic who can be booked: enabled users holding a bookable
    /// role there, with their hours at the clinic and time off overlapping
    /// `[from, to)`.
    pub async fn bookable_staff(
        &self,
        clinic: ClinicId,
        from: i64,
        to: i64,
    ) -> Result<Vec<StaffMember>> {
        let grants: Vec<(String, String, String)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT u.id, u.display_name, g.role FROM role_grants g JOIN users u ON u.id = g.user_id \
                 WHERE g.clinic_id = $1 AND NOT u.disabled ORDER BY u.display_name, u.id")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        let mut staff: Vec<StaffMember> = vec![];
        for (id, name, role) in grants {
            let Ok(role) = role.parse::<Role>() else {
                continue;
            };
            if !BOOKABLE_ROLES.contains(&role) {
                continue;
            }
            let id: UserId = parse_id(&id)?;
            match staff.iter_mut().find(|s| s.id == id) {
                Some(s) => s.roles.push(role),
                None => staff.push(StaffMember {
                    id,
                    name,
                    roles: vec![role],
                    hours: vec![],
                    time_off: vec![],
                }),
            }
        }
        let hours: Vec<(String, i32, i32, i32)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT user_id, weekday, start_min, end_min FROM staff_hours WHERE clinic_id = $1")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        for (u, w, s, e) in hours {
            if let Some(m) = staff.iter_mut().find(|m| m.id.to_string() == u) {
                m.hours.push(DayHours {
                    weekday: w as i16,
                    opens_min: s,
                    closes_min: e,
                });
            }
        }
        if !staff.is_empty() {
            let sql = format!(
                "SELECT user_id, starts_at, ends_at FROM staff_time_off WHERE ends_at > $1 AND starts_at < $2 AND user_id IN ({})",
                placeholders(3, staff.len())
            );
            let off: Vec<(String, i64, i64)> = on_pool!(self.read(), p => {
                let mut q = sqlx::query_as(&sql).bind(from).bind(to);
                for s in &staff { q = q.bind(s.id.to_string()); }
                q.fetch_all(p).await?
            });
            for (u, a, b) in off {
                if let Some(m) = staff.iter_mut().find(|m| m.id.to_string() == u) {
                    m.time_off.push((a, b));
                }
            }
        }
        Ok(staff)
    }

    /// Time off of the clinic's staff overlapping `[from, to)`, for views.
    pub async fn time_off_between(
        &self,
        users: &[UserId],
        from: i64,
        to: i64,
    ) -> Result<Vec<(UserId, i64, i64, String)>> {
        if users.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT user_id, starts_at, ends_at, reason FROM staff_time_off WHERE ends_at > $1 AND starts_at < $2 \
             AND user_id IN ({}) ORDER BY starts_at",
            placeholders(3, users.len())
        );
        let rows: Vec<(String, i64, i64, String)> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql).bind(from).bind(to);
            for u in users { q = q.bind(u.to_string()); }
            q.fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(u, a, b, r)| Ok((parse_id(&u)?, a, b, r)))
            .collect()
    }

    // ---- The calendar a search runs on ---------------------------------------

    /// Loads what a search for `[from, to)` needs: the clinic's hours,
    /// closures, rules, active chairs and rooms, bookable staff, and who is
    /// busy (this clinic's visits, the patient's visits anywhere, and the
    /// staff's visits at other clinics).
    pub async fn calendar(
        &self,
        clinic: ClinicId,
        from: i64,
        to: i64,
        patient: Option<PatientId>,
    ) -> Result<Calendar> {
        let c = self.clinic(clinic).await?;
        let tz = jiff::tz::TimeZone::get(&c.settings.time_zone)
            .map_err(|_| decode(format!("clinic time zone {}", c.settings.time_zone)))?;
        let closures = self
            .closures(clinic)
            .await?
            .into_iter()
            .map(|x| x.closed_on)
            .collect();
        let rules = self.scheduling_rules(clinic).await?;
        let resources = self
            .resources(clinic)
            .await?
            .into_iter()
            .filter(|r| r.active)
            .map(|r| r.resource)
            .collect();
        let staff = self.bookable_staff(clinic, from, to).await?;
        let mut occupancy = Occupancy::default();
        let busy = self.busy_plans(clinic, from, to, patient, &staff).await?;
        for (pid, plan) in &busy {
            add_plan(&mut occupancy, plan, *pid, &rules);
        }
        Ok(Calendar {
            tz,
            hours: c.settings.hours,
            closures,
            rules,
            resources,
            staff,
            occupancy,
            now: self.now(),
        })
    }

    async fn busy_plans(
        &self,
        clinic: ClinicId,
        from: i64,
        to: i64,
        patient: Option<PatientId>,
        staff: &[StaffMember],
    ) -> Result<Vec<(PatientId, VisitPlan)>> {
        // Visits that hold time and overlap the window. A visit lasts at most
        // 12 hours, so starting within a day's margin either side covers every
        // overlap and turnover, and lets each query use a (who, starts_at) index.
        // Three queries, not one with OR: an OR across clinic, patient and
        // staff defeats the indexes (a full scan of every visit ever booked).
        let (from, to) = (from - 24 * 3_600_000_000, to + 24 * 3_600_000_000);
        let live = "a.status IN ('booked', 'checked_in', 'completed') AND a.starts_at >= $1 AND a.starts_at < $2";
        let mut rows: Vec<(String, String, String)> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT a.id, a.patient_id, a.plan FROM appointments a WHERE a.clinic_id = $3 AND {live}"))
                .bind(from).bind(to).bind(clinic.to_string()).fetch_all(p).await?
        });
        if let Some(pt) = patient {
            let more: Vec<(String, String, String)> = on_pool!(self.read(), p => {
                sqlx::query_as(&format!("SELECT a.id, a.patient_id, a.plan FROM appointments a \
                     WHERE a.patient_id = $3 AND a.clinic_id <> $4 AND {live}"))
                    .bind(from).bind(to).bind(pt.to_string()).bind(clinic.to_string()).fetch_all(p).await?
            });
            rows.extend(more);
        }
        if !staff.is_empty() {
            let sql = format!(
                "SELECT DISTINCT a.id, a.patient_id, a.plan FROM appointment_staff s JOIN appointments a ON a.id = s.appointment_id \
                 WHERE s.user_id IN ({}) AND a.clinic_id <> $3 AND {live}",
                placeholders(4, staff.len())
            );
            let more: Vec<(String, String, String)> = on_pool!(self.read(), p => {
                let mut q = sqlx::query_as(&sql).bind(from).bind(to).bind(clinic.to_string());
                for s in staff { q = q.bind(s.id.to_string()); }
                q.fetch_all(p).await?
            });
            rows.extend(more);
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        rows.into_iter()
            .map(|(_, pid, plan)| {
                let plan: VisitPlan =
                    serde_json::from_str(&plan).map_err(|e| decode(format!("stored plan: {e}")))?;
                Ok((parse_id(&pid)?, plan))
            })
            .collect()
    }

    // ---- Booking -------------------------------------------------------------

    /// Inserts visits (and their series) with their claims and audit records in
    /// one transaction. A claim that another booking holds rolls it all back
    /// and answers a conflict.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_visits(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        series: Option<&NewSeries>,
        visits: &[NewVisit],
        by: Option<UserId>,
        audit: Vec<NewAuditEvent>,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<()> {
        self.insert_visits_with(clinic, patient, series, visits, by, audit, jobs, None)
            .await
    }

    /// Books a visit the patient chose in the portal, marked as self-booked.
    pub async fn insert_portal_visit(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        visit: &NewVisit,
        audit: Vec<NewAuditEvent>,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<()> {
        self.insert_visits_with(
            clinic,
            patient,
            None,
            std::slice::from_ref(visit),
            None,
            audit,
            jobs,
            Some(Booked::Portal),
        )
        .await
    }

    /// Books a lead's consultation: the patient record, the visit and the
    /// lead's update in one transaction (a lost race leaves no patient behind).
    pub async fn book_lead_visit(
        &self,
        booking: &crate::leads::LeadBooking,
        clinic: ClinicId,
        visit: &NewVisit,
        audit: Vec<NewAuditEvent>,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<()> {
        for _ in 0..5 {
            let r = self
                .insert_visits_with(
                    clinic,
                    booking.patient,
                    None,
                    std::slice::from_ref(visit),
                    None,
                    audit.clone(),
                    jobs,
                    Some(Booked::Lead(booking)),
                )
                .await;
            match r {
                Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "mrn") => continue,
                other => return other,
            }
        }
        Err(DomainError::Conflict("could not assign a unique MRN; try again".into()).into())
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_visits_with(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        series: Option<&NewSeries>,
        visits: &[NewVisit],
        by: Option<UserId>,
        audit: Vec<NewAuditEvent>,
        jobs: &[crate::outbox::NewJob],
        how: Option<Booked<'_>>,
    ) -> Result<()> {
        let lead = match how {
            Some(Booked::Lead(b)) => Some(b),
            _ => None,
        };
        let self_booked = matches!(how, Some(Booked::Portal));
        let now = self.now();
        let mrn = domain::patients::mrn_from_bits(crate::patients::rand_bits());
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            if let Some(b) = lead {
                // The patient row first: the visit refers to it.
                crate::insert_patient!(tx, b.patient, b.org, clinic, &mrn, &b.details, now, None::<UserId>)?;
            }
            if let Some(s) = series {
                let spec = serde_json::to_string(&s.spec).map_err(|e| decode(e.to_string()))?;
                sqlx::query("INSERT INTO series (id, clinic_id, patient_id, kind, spec, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(s.id.to_string()).bind(clinic.to_string()).bind(patient.to_string())
                    .bind(serde_json::to_value(s.spec.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default())
                    .bind(spec).bind(now).bind(by.map(|u| u.to_string()))
                    .execute(&mut *tx).await?;
            }
            for v in visits {
                let plan = serde_json::to_string(&v.plan).map_err(|e| decode(e.to_string()))?;
                sqlx::query("INSERT INTO appointments (id, clinic_id, patient_id, type_code, type_name, series_id, \
                     series_index, series_role, starts_at, ends_at, status, resource_id, plan, sequence, late_cancel, \
                     created_at, updated_at, created_by, self_booked) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'booked', $11, $12, 0, FALSE, $13, $13, $14, $15)")
                    .bind(v.id.to_string()).bind(clinic.to_string()).bind(patient.to_string())
                    .bind(&v.plan.type_code).bind(&v.type_name)
                    .bind(series.map(|s| s.id.to_string())).bind(v.series_index).bind(v.series_role)
                    .bind(v.plan.start).bind(v.plan.end)
                    .bind(v.plan.resource().map(|r| r.to_string())).bind(plan).bind(now)
                    .bind(by.map(|u| u.to_string())).bind(self_booked)
                    .execute(&mut *tx).await?;
                for u in v.plan.people() {
                    sqlx::query("INSERT INTO appointment_staff (appointment_id, user_id) VALUES ($1, $2)")
                        .bind(v.id.to_string()).bind(u.to_string()).execute(&mut *tx).await?;
                }
                for chunk in v.claims.chunks(400) {
                    let sql = claims_sql(chunk.len());
                    let mut q = sqlx::query(&sql);
                    for c in chunk {
                        q = q.bind(c.key.to_db()).bind(c.granule).bind(i32::from(c.seat)).bind(v.id.to_string());
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            if let Some(b) = lead {
                let appt = visits.first().map(|v| v.id).unwrap_or_default();
                crate::book_lead_in_tx!(tx, b, appt, now)?;
            }
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &audit, self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e)) if is_claim_violation(&e) => Err(taken()),
            other => other,
        }
    }

    /// Moves a visit to a new plan: old claims released, new ones taken, the
    /// iCalendar SEQUENCE raised, all in one transaction.
    pub async fn move_visit(
        &self,
        id: AppointmentId,
        plan: &VisitPlan,
        claims: &[Claim],
        audit: NewAuditEvent,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<()> {
        let json = serde_json::to_string(plan).map_err(|e| decode(e.to_string()))?;
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE appointments SET starts_at = $2, ends_at = $3, plan = $4, resource_id = $5, \
                 sequence = sequence + 1, updated_at = $6 WHERE id = $1 AND status = 'booked'")
                .bind(id.to_string()).bind(plan.start).bind(plan.end).bind(json)
                .bind(plan.resource().map(|r| r.to_string())).bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::Conflict("only a booked visit can be moved".into()).into());
            }
            sqlx::query("DELETE FROM slot_claims WHERE appointment_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM appointment_staff WHERE appointment_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            for u in plan.people() {
                sqlx::query("INSERT INTO appointment_staff (appointment_id, user_id) VALUES ($1, $2)")
                    .bind(id.to_string()).bind(u.to_string()).execute(&mut *tx).await?;
            }
            for chunk in claims.chunks(400) {
                let sql = claims_sql(chunk.len());
                let mut q = sqlx::query(&sql);
                for c in chunk {
                    q = q.bind(c.key.to_db()).bind(c.granule).bind(i32::from(c.seat)).bind(id.to_string());
                }
                q.execute(&mut *tx).await?;
            }
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e)) if is_claim_violation(&e) => Err(taken()),
            other => other,
        }
    }

    /// Cancels, marks a no-show, checks in or completes a visit. Cancelled
    /// and no-show visits release their time; the record stays.
    pub async fn set_visit_status(
        &self,
        id: AppointmentId,
        status: Status,
        reason: Option<&str>,
        late: bool,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let allowed_from: &[&str] = match status {
            Status::Cancelled | Status::CheckedIn => &["booked"],
            Status::NoShow => &["booked"],
            Status::Completed => &["booked", "checked_in"],
            Status::Booked => &[],
        };
        if allowed_from.is_empty() {
            return Err(DomainError::field("status", "cannot be set back to booked").into());
        }
        let sql = format!(
            "UPDATE appointments SET status = $2, cancel_reason = COALESCE($3, cancel_reason), late_cancel = $4, \
             sequence = sequence + 1, updated_at = $5 WHERE id = $1 AND status IN ({})",
            allowed_from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
        );
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(&sql)
                .bind(id.to_string()).bind(status.as_str()).bind(reason).bind(late).bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::Conflict(format!(
                    "the visit is not in a state that can become {}", status.label().to_lowercase()
                )).into());
            }
            if !status.holds_time() {
                sqlx::query("DELETE FROM slot_claims WHERE appointment_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- Reading visits --------------------------------------------------------

    async fn appointments_where(
        &self,
        cond: &str,
        binds: Vec<BindVal>,
    ) -> Result<Vec<Appointment>> {
        let sql = format!(
            "SELECT {APPT_COLUMNS} FROM appointments a JOIN patients p ON p.id = a.patient_id WHERE {cond} \
             ORDER BY a.starts_at, a.id"
        );
        let rows: Vec<AppointmentRow> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as::<_, AppointmentRow>(&sql);
            for b in &binds {
                q = match b { BindVal::S(s) => q.bind(s.clone()), BindVal::I(i) => q.bind(*i) };
            }
            q.fetch_all(p).await?
        });
        rows.into_iter()
            .map(AppointmentRow::into_appointment)
            .collect()
    }

    /// A visit, if it belongs to one of `clinics`.
    pub async fn appointment(
        &self,
        id: AppointmentId,
        clinics: &[ClinicId],
    ) -> Result<Option<Appointment>> {
        if clinics.is_empty() {
            return Ok(None);
        }
        let mut binds = vec![BindVal::S(id.to_string())];
        binds.extend(clinics.iter().map(|c| BindVal::S(c.to_string())));
        let cond = format!(
            "a.id = $1 AND a.clinic_id IN ({})",
            placeholders(2, clinics.len())
        );
        Ok(self
            .appointments_where(&cond, binds)
            .await?
            .into_iter()
            .next())
    }

    /// A clinic's visits starting in `[from, to)`.
    pub async fn clinic_appointments(
        &self,
        clinic: ClinicId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Appointment>> {
        self.appointments_where(
            "a.clinic_id = $1 AND a.starts_at >= $2 AND a.starts_at < $3",
            vec![
                BindVal::S(clinic.to_string()),
                BindVal::I(from),
                BindVal::I(to),
            ],
        )
        .await
    }

    /// A patient's visits in `clinics`, by time.
    pub async fn patient_appointments(
        &self,
        patient: PatientId,
        clinics: &[ClinicId],
    ) -> Result<Vec<Appointment>> {
        if clinics.is_empty() {
            return Ok(vec![]);
        }
        let mut binds = vec![BindVal::S(patient.to_string())];
        binds.extend(clinics.iter().map(|c| BindVal::S(c.to_string())));
        let cond = format!(
            "a.patient_id = $1 AND a.clinic_id IN ({})",
            placeholders(2, clinics.len())
        );
        self.appointments_where(&cond, binds).await
    }

    /// A person's visits starting in `[from, to)`, any clinic.
    pub async fn staff_appointments(
        &self,
        user: UserId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Appointment>> {
        self.appointments_where(
            "a.id IN (SELECT appointment_id FROM appointment_staff WHERE user_id = $1) AND a.starts_at >= $2 AND a.starts_at < $3",
            vec![BindVal::S(user.to_string()), BindVal::I(from), BindVal::I(to)],
        )
        .await
    }

    /// A chair's or room's visits starting in `[from, to)`.
    pub async fn resource_appointments(
        &self,
        resource: ResourceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Appointment>> {
        self.appointments_where(
            "a.resource_id = $1 AND a.starts_at >= $2 AND a.starts_at < $3",
            vec![
                BindVal::S(resource.to_string()),
                BindVal::I(from),
                BindVal::I(to),
            ],
        )
        .await
    }

    pub async fn series_appointments(&self, series: SeriesId) -> Result<Vec<Appointment>> {
        self.appointments_where("a.series_id = $1", vec![BindVal::S(series.to_string())])
            .await
    }

    pub async fn series_spec(&self, series: SeriesId) -> Result<CourseSpec> {
        let r: Option<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT spec FROM series WHERE id = $1").bind(series.to_string()).fetch_optional(p).await?
        });
        let (s,) = r.ok_or(DomainError::NotFound)?;
        serde_json::from_str(&s).map_err(|e| decode(format!("stored series: {e}")))
    }

    /// How many claim rows hold time (tests check a cancelled or failed
    /// booking leaves none behind).
    pub async fn count_claims(&self, appointment: Option<AppointmentId>) -> Result<i64> {
        let (n,): (i64,) = on_pool!(self.read(), p => {
            match appointment {
                Some(a) => sqlx::query_as("SELECT COUNT(*) FROM slot_claims WHERE appointment_id = $1").bind(a.to_string()).fetch_one(p).await?,
                None => sqlx::query_as("SELECT COUNT(*) FROM slot_claims").fetch_one(p).await?,
            }
        });
        Ok(n)
    }

    // ---- Calendar feeds ----------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn create_feed(
        &self,
        clinic: ClinicId,
        subject_kind: &str,
        subject_id: &str,
        label: &str,
        token_hash: &str,
        by: Option<UserId>,
        audit: NewAuditEvent,
    ) -> Result<FeedId> {
        let id = FeedId::new();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO calendar_feeds (id, token_hash, clinic_id, subject_kind, subject_id, label, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(id.to_string()).bind(token_hash).bind(clinic.to_string()).bind(subject_kind)
                .bind(subject_id).bind(label).bind(self.now()).bind(by.map(|u| u.to_string()))
                .execute(&mut *tx).await?;
            let mut ev = audit;
            ev.object_type = Some("calendar_feed".into());
            ev.object_id = Some(id.to_string());
            append_in_tx!(tx, &[ev], self.now())?;
            tx.commit().await?;
        });
        Ok(id)
    }

    pub async fn feed_by_token_hash(&self, hash: &str) -> Result<Option<Feed>> {
        let r: Option<FeedRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, clinic_id, subject_kind, subject_id, label, created_at, revoked_at FROM calendar_feeds WHERE token_hash = $1")
                .bind(hash).fetch_optional(p).await?
        });
        r.map(feed_from_row).transpose()
    }

    pub async fn feeds(&self, clinic: ClinicId) -> Result<Vec<Feed>> {
        let rows: Vec<FeedRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, clinic_id, subject_kind, subject_id, label, created_at, revoked_at FROM calendar_feeds \
                 WHERE clinic_id = $1 ORDER BY created_at DESC")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        rows.into_iter().map(feed_from_row).collect()
    }

    pub async fn revoke_feed(
        &self,
        clinic: ClinicId,
        id: FeedId,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE calendar_feeds SET revoked_at = $3 WHERE id = $1 AND clinic_id = $2 AND revoked_at IS NULL")
                .bind(id.to_string()).bind(clinic.to_string()).bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }
}

type FeedRow = (String, String, String, String, String, i64, Option<i64>);

fn feed_from_row(r: FeedRow) -> Result<Feed> {
    Ok(Feed {
        id: parse_id(&r.0)?,
        clinic_id: parse_id(&r.1)?,
        subject_kind: r.2,
        subject_id: r.3,
        label: r.4,
        created_at: r.5,
        revoked_at: r.6,
    })
}

enum BindVal {
    S(String),
    I(i64),
}

fn claims_sql(n: usize) -> String {
    let values = (0..n)
        .map(|i| format!("({})", placeholders(i * 4 + 1, 4)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO slot_claims (claim_key, granule, seat, appointment_id) VALUES {values}")
}

/// Adds a stored visit to an occupancy map. Seats are counted, not copied: a
/// shared seat takes the lowest free one, and a full person stays full even
/// if a ratio was lowered after the booking.
pub fn add_plan(
    occ: &mut Occupancy,
    plan: &VisitPlan,
    patient: PatientId,
    rules: &SchedulingRules,
) {
    // Seats as a bit mask per granule: this runs for every visit of a loaded
    // calendar, so it allocates nothing per granule.
    let mask = |n: u8| if n >= 8 { u8::MAX } else { (1u8 << n) - 1 };
    for (key, range, u) in footprint(plan, patient) {
        for granule in range {
            let seats: u8 = match u {
                Use::Single => 1,
                Use::Whole(role) => mask(seats_for(role)),
                Use::Shared(role) => {
                    let taken = occ.bits(&key, granule);
                    let ratio = rules.ratio_for(role);
                    match (0..ratio).find(|s| taken & (1 << s) == 0) {
                        Some(s) => 1 << s,
                        None => mask(ratio),
                    }
                }
            };
            for seat in (0..8u8).filter(|s| seats & (1 << s) != 0) {
                occ.add(&Claim { key, granule, seat });
            }
        }
    }
}

impl Store {
    /// The claims held on `keys` in granules `[g0, g1)`: the exact seats, so a
    /// new booking picks seats the database will accept.
    pub async fn claims_on(
        &self,
        keys: &[Key],
        g0: i64,
        g1: i64,
        exclude: Option<AppointmentId>,
    ) -> Result<Occupancy> {
        let mut occ = Occupancy::default();
        if keys.is_empty() {
            return Ok(occ);
        }
        let sql = format!(
            "SELECT claim_key, granule, seat FROM slot_claims WHERE granule >= $1 AND granule < $2 \
             AND appointment_id <> $3 AND claim_key IN ({})",
            placeholders(4, keys.len())
        );
        let rows: Vec<(String, i64, i32)> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql).bind(g0).bind(g1)
                .bind(exclude.map(|a| a.to_string()).unwrap_or_default());
            for k in keys { q = q.bind(k.to_db()); }
            q.fetch_all(p).await?
        });
        for (k, g, s) in rows {
            if let (Some(key), Ok(seat)) = (Key::from_db(&k), u8::try_from(s)) {
                if seat < 8 {
                    occ.add(&Claim {
                        key,
                        granule: g,
                        seat,
                    });
                }
            }
        }
        Ok(occ)
    }
}

/// Takes a stored visit back out of an occupancy map (the inverse of
/// [`add_plan`] in counts): used when a visit is moved, so it does not stand
/// in its own way.
pub fn remove_plan(
    occ: &mut Occupancy,
    plan: &VisitPlan,
    patient: PatientId,
    rules: &SchedulingRules,
) {
    for (key, range, u) in footprint(plan, patient) {
        for granule in range {
            let seats: Vec<u8> = match u {
                Use::Single => vec![0],
                Use::Whole(role) => (0..seats_for(role)).collect(),
                Use::Shared(role) => {
                    let taken = occ.bits(&key, granule);
                    (0..rules.ratio_for(role))
                        .rev()
                        .find(|s| taken & (1 << s) != 0)
                        .into_iter()
                        .collect()
                }
            };
            for seat in seats {
                occ.remove(&Claim { key, granule, seat });
            }
        }
    }
}

/// A waitlist entry, with the patient's name for staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEntry {
    pub id: String,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub type_code: String,
    pub from_date: jiff::civil::Date,
    pub to_date: jiff::civil::Date,
    pub note: Option<String>,
    pub status: String,
    pub offered_start: Option<i64>,
    pub created_at: i64,
}

type WaitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
    i64,
);

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn add_waitlist(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        type_code: &str,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
        note: Option<&str>,
        by: Option<UserId>,
        audit: NewAuditEvent,
    ) -> Result<String> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO waitlist (id, clinic_id, patient_id, type_code, from_date, to_date, note, status, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting', $8, $9)")
                .bind(&id).bind(clinic.to_string()).bind(patient.to_string()).bind(type_code)
                .bind(from.to_string()).bind(to.to_string()).bind(note).bind(self.now())
                .bind(by.map(|u| u.to_string()))
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Entries of a clinic that are still open (waiting or offered), oldest first.
    pub async fn waitlist(&self, clinic: ClinicId) -> Result<Vec<WaitEntry>> {
        let rows: Vec<WaitRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT w.id, w.clinic_id, w.patient_id, p.given_name || ' ' || p.family_name, w.type_code, w.from_date, w.to_date, \
                 w.note, w.status, w.offered_start, w.created_at FROM waitlist w JOIN patients p ON p.id = w.patient_id \
                 WHERE w.clinic_id = $1 AND w.status IN ('waiting', 'offered') ORDER BY w.created_at, w.id")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(WaitEntry {
                    id: r.0,
                    clinic_id: parse_id(&r.1)?,
                    patient_id: parse_id(&r.2)?,
                    patient_name: r.3,
                    type_code: r.4,
                    from_date: parse_id(&r.5)?,
                    to_date: parse_id(&r.6)?,
                    note: r.7,
                    status: r.8,
                    offered_start: r.9,
                    created_at: r.10,
                })
            })
            .collect()
    }

    /// Marks an entry offered a freed start, with an e-mail job, in one transaction.
    /// Only a waiting entry can be offered (two cancellations never offer one entry twice).
    pub async fn offer_waitlist(
        &self,
        id: &str,
        start: i64,
        audit: NewAuditEvent,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<bool> {
        let n = on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE waitlist SET status = 'offered', offered_start = $2, offered_at = $3 WHERE id = $1 AND status = 'waiting'")
                .bind(id).bind(start).bind(self.now()).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                crate::insert_jobs!(tx, jobs, self.now())?;
                append_in_tx!(tx, &[audit], self.now())?;
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Closes an entry: booked or removed.
    pub async fn close_waitlist(
        &self,
        clinic: ClinicId,
        id: &str,
        status: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        if status != "booked" && status != "removed" {
            return Err(DomainError::field("status", "must be booked or removed").into());
        }
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE waitlist SET status = $3 WHERE id = $1 AND clinic_id = $2 AND status IN ('waiting', 'offered')")
                .bind(id).bind(clinic.to_string()).bind(status).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }
}
