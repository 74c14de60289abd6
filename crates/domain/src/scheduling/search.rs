//! Finding a time for one visit: opening hours, closures, staff hours and
//! time off, chair capabilities, ratios and everyone's other bookings.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::{
    granule_of, seats_for, AppointmentType, PhaseKind, Place, Resource, ResourceKind,
    SchedulingRules, GRANULE_MICROS,
};
use crate::auth::Role;
use crate::clinics::{iso_weekday, DayHours};
use crate::ids::{PatientId, ResourceId, UserId};

const MINUTE: i64 = 60 * 1_000_000;

/// Whose time a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Resource(ResourceId),
    Staff(UserId),
    Patient(PatientId),
}

impl Key {
    /// The text stored in the claims table's unique key.
    pub fn to_db(&self) -> String {
        match self {
            Key::Resource(r) => format!("r:{r}"),
            Key::Staff(u) => format!("s:{u}"),
            Key::Patient(p) => format!("p:{p}"),
        }
    }
    pub fn from_db(s: &str) -> Option<Key> {
        let (k, id) = s.split_once(':')?;
        match k {
            "r" => id.parse().ok().map(Key::Resource),
            "s" => id.parse().ok().map(Key::Staff),
            "p" => id.parse().ok().map(Key::Patient),
            _ => None,
        }
    }
}

/// One seat of one key in one 5-minute granule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Claim {
    pub key: Key,
    pub granule: i64,
    pub seat: u8,
}

/// Who is busy when: per key, a bit per taken seat in each granule. Each key
/// holds one dense run of granules (a search touches a few weeks), so a
/// check is one hash lookup and a slice scan.
#[derive(Debug, Clone, Default)]
pub struct Occupancy {
    map: HashMap<Key, Run>,
}

#[derive(Debug, Clone, Default)]
struct Run {
    start: i64,
    bits: Vec<u8>,
}

impl Run {
    fn get(&self, g: i64) -> u8 {
        let i = g - self.start;
        if i < 0 {
            return 0;
        }
        self.bits.get(i as usize).copied().unwrap_or(0)
    }
    fn slot(&mut self, g: i64) -> &mut u8 {
        if self.bits.is_empty() {
            self.start = g;
        }
        if g < self.start {
            let grow = (self.start - g) as usize;
            let mut v = vec![0u8; grow];
            v.extend_from_slice(&self.bits);
            self.bits = v;
            self.start = g;
        }
        let i = (g - self.start) as usize;
        if i >= self.bits.len() {
            self.bits.resize(i + 1, 0);
        }
        &mut self.bits[i]
    }
    /// The bits of granules `[g0, g1)` that are stored (others are zero).
    fn range(&self, g0: i64, g1: i64) -> &[u8] {
        let lo = (g0 - self.start).clamp(0, self.bits.len() as i64) as usize;
        let hi = (g1 - self.start).clamp(0, self.bits.len() as i64) as usize;
        &self.bits[lo..hi.max(lo)]
    }
}

impl Occupancy {
    pub fn add(&mut self, c: &Claim) {
        *self.map.entry(c.key).or_default().slot(c.granule) |= 1 << c.seat;
    }
    pub fn remove(&mut self, c: &Claim) {
        if let Some(r) = self.map.get_mut(&c.key) {
            if c.granule >= r.start && ((c.granule - r.start) as usize) < r.bits.len() {
                *r.slot(c.granule) &= !(1 << c.seat);
            }
        }
    }
    pub fn bits(&self, key: &Key, granule: i64) -> u8 {
        self.map.get(key).map_or(0, |r| r.get(granule))
    }
    /// No seat in `mask` is taken in any granule of `[g0, g1)`.
    fn free(&self, key: &Key, g0: i64, g1: i64, mask: u8) -> bool {
        match self.map.get(key) {
            None => true,
            Some(r) => r.range(g0, g1).iter().all(|b| b & mask == 0),
        }
    }
    /// Some seat in `mask` is free in every granule of `[g0, g1)`.
    fn has_seat(&self, key: &Key, g0: i64, g1: i64, mask: u8) -> bool {
        match self.map.get(key) {
            None => true,
            Some(r) => r.range(g0, g1).iter().all(|b| b & mask != mask),
        }
    }
}

/// A person who can be booked, with their weekly hours (clinic time) and time off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub id: UserId,
    pub name: String,
    pub roles: Vec<Role>,
    pub hours: Vec<DayHours>,
    /// Absent intervals `[from, to)` in UTC micros.
    pub time_off: Vec<(i64, i64)>,
}

/// Everything a search needs to know about one clinic.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub tz: TimeZone,
    pub hours: Vec<DayHours>,
    pub closures: Vec<Date>,
    pub rules: SchedulingRules,
    pub resources: Vec<Resource>,
    pub staff: Vec<StaffMember>,
    pub occupancy: Occupancy,
    /// "Now", in UTC micros: nothing is offered before now plus the notice.
    pub now: i64,
}

/// What a patient or the front desk would like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Preferences {
    /// ISO weekdays (1 = Monday); empty means any.
    #[serde(default)]
    pub weekdays: Vec<i16>,
    /// Earliest start, minutes after local midnight.
    #[serde(default)]
    pub earliest_min: Option<i32>,
    /// Latest start, minutes after local midnight.
    #[serde(default)]
    pub latest_min: Option<i32>,
    /// People to try first.
    #[serde(default)]
    pub staff: Vec<UserId>,
    /// Only the people in `staff` (for their role).
    #[serde(default)]
    pub only_these_staff: bool,
    /// A chair or room to try first.
    #[serde(default)]
    pub resource: Option<ResourceId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub role: Role,
    pub user: UserId,
    pub shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPhase {
    pub kind: PhaseKind,
    pub start: i64,
    pub end: i64,
    pub resource: Option<ResourceId>,
    pub staff: Vec<Assignment>,
}

/// A visit with every phase placed: times, chair or room, and people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitPlan {
    pub type_code: String,
    pub start: i64,
    pub end: i64,
    pub phases: Vec<PlannedPhase>,
    /// Chair or room turnover after the last phase that uses it.
    pub buffer_after_min: u16,
}

impl VisitPlan {
    /// A visit of type `t` nobody booked, placed as it happens: its phases
    /// back to back from `start`, the chair phases on `chair`, no one
    /// assigned ahead (whoever is on the floor attends).
    pub fn unbooked(t: &AppointmentType, start: i64, chair: ResourceId) -> VisitPlan {
        let mut at = start;
        let phases = t
            .phases
            .iter()
            .map(|p| {
                let end = at + i64::from(p.minutes) * MINUTE;
                let ph = PlannedPhase {
                    kind: p.kind,
                    start: at,
                    end,
                    resource: (p.place == Place::Chair).then_some(chair),
                    staff: vec![],
                };
                at = end;
                ph
            })
            .collect();
        VisitPlan {
            type_code: t.code.clone(),
            start,
            end: at,
            phases,
            buffer_after_min: t.buffer_after_min,
        }
    }

    /// The chair or room of the visit (the first phase that has one).
    pub fn resource(&self) -> Option<ResourceId> {
        self.phases.iter().find_map(|p| p.resource)
    }
    pub fn people(&self) -> Vec<UserId> {
        let mut v: Vec<_> = self
            .phases
            .iter()
            .flat_map(|p| p.staff.iter().map(|a| a.user))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Why a time was refused, counted over a search so the answer can say what blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "blocker", content = "what", rename_all = "snake_case")]
pub enum Blocker {
    Closed,
    OutsideHours,
    TooSoon,
    BeyondHorizon,
    NotPreferred,
    PatientBusy,
    NoSuchResource(ResourceKind),
    ResourceBusy(ResourceKind),
    NoStaffOnDuty(Role),
    StaffBusy(Role),
    /// Series only: no integration session fits the window after a dose.
    NoIntegration,
    /// Series only: spacing rules (gap, per-week limit, span) leave no day.
    Spacing,
}

impl Blocker {
    pub fn describe(&self) -> String {
        match self {
            Blocker::Closed => "the clinic is closed".into(),
            Blocker::OutsideHours => "the visit would run past closing time".into(),
            Blocker::TooSoon => "it is too soon (minimum notice)".into(),
            Blocker::BeyondHorizon => "it is beyond the booking horizon".into(),
            Blocker::NotPreferred => "outside the preferred days or times".into(),
            Blocker::PatientBusy => "the patient has another visit then".into(),
            Blocker::NoSuchResource(k) => format!(
                "the clinic has no {} with the needed equipment",
                k.label().to_lowercase()
            ),
            Blocker::ResourceBusy(k) => {
                format!("every suitable {} is taken", k.label().to_lowercase())
            }
            Blocker::NoStaffOnDuty(r) => {
                format!("no {} is working then", r.label().to_lowercase())
            }
            Blocker::StaffBusy(r) => format!(
                "every {} on duty is fully booked (ratio reached)",
                r.label().to_lowercase()
            ),
            Blocker::NoIntegration => {
                "no integration session fits in the window after the dose".into()
            }
            Blocker::Spacing => "the spacing rules of the course leave no day".into(),
        }
    }
}

/// A tally of blockers over a search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally(pub BTreeMap<Blocker, u32>);

impl Tally {
    pub fn add(&mut self, b: Blocker) {
        *self.0.entry(b).or_default() += 1;
    }
    pub fn merge(&mut self, o: &Tally) {
        for (b, n) in &o.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }
    /// The blockers that matter, most frequent first, leaving out the ones
    /// that only say a time was outside the day.
    pub fn main(&self) -> Vec<Blocker> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .filter(|(b, _)| {
                !matches!(
                    b,
                    Blocker::Closed
                        | Blocker::OutsideHours
                        | Blocker::TooSoon
                        | Blocker::NotPreferred
                )
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(b, _)| *b).collect()
    }
}

/// Converts a local wall-clock minute of a date to UTC micros (DST-correct;
/// a time skipped by a DST jump moves forward like a wall clock does).
pub fn local_to_micros(tz: &TimeZone, date: Date, minute: i32) -> Option<i64> {
    let base = date.to_datetime(Time::midnight());
    let dt = base
        .checked_add(jiff::Span::new().minutes(i64::from(minute)))
        .ok()?;
    let z = tz.to_ambiguous_zoned(dt).compatible().ok()?;
    Some(z.timestamp().as_microsecond())
}

/// One day's open window and each person's working window, in UTC micros.
#[derive(Debug, Clone)]
pub struct DayCtx {
    pub date: Date,
    pub weekday: i16,
    pub open: Option<(i64, i64)>,
    /// Local midnight in micros; local minutes are counted from it.
    midnight: i64,
    staff: Vec<Option<(i64, i64)>>,
}

impl Calendar {
    pub fn day(&self, date: Date) -> DayCtx {
        let weekday = iso_weekday(date.weekday());
        let midnight = local_to_micros(&self.tz, date, 0).unwrap_or(0);
        let window = |hours: &[DayHours]| {
            hours.iter().find(|h| h.weekday == weekday).and_then(|h| {
                Some((
                    local_to_micros(&self.tz, date, h.opens_min)?,
                    local_to_micros(&self.tz, date, h.closes_min)?,
                ))
            })
        };
        let open = if self.closures.contains(&date) {
            None
        } else {
            window(&self.hours)
        };
        let staff = if open.is_some() {
            self.staff.iter().map(|s| window(&s.hours)).collect()
        } else {
            vec![None; self.staff.len()]
        };
        DayCtx {
            date,
            weekday,
            open,
            midnight,
            staff,
        }
    }

    /// Candidate starts of a day: every step from opening while the visit
    /// still ends by closing time.
    pub fn starts(&self, day: &DayCtx, minutes: i64) -> Vec<i64> {
        let Some((open, close)) = day.open else {
            return vec![];
        };
        let step = i64::from(self.rules.slot_step_min.max(5)) * MINUTE;
        // Align to multiples of the step after local midnight.
        let first = day.midnight + ((open - day.midnight) + step - 1).div_euclid(step) * step;
        let mut out = vec![];
        let mut t = first;
        while t + minutes * MINUTE <= close {
            out.push(t);
            t += step;
        }
        out
    }

    /// Tries to place a visit of `ty` for `patient` starting exactly at
    /// `start` (UTC micros), against `occ`.
    pub fn try_at(
        &self,
        occ: &Occupancy,
        day: &DayCtx,
        ty: &AppointmentType,
        patient: PatientId,
        start: i64,
        prefs: &Preferences,
    ) -> Result<VisitPlan, Blocker> {
        let end = start + ty.total_minutes() * MINUTE;
        let Some((open, close)) = day.open else {
            return Err(Blocker::Closed);
        };
        if start < open || end > close {
            return Err(Blocker::OutsideHours);
        }
        if start < self.now + i64::from(self.rules.min_notice_min) * MINUTE {
            return Err(Blocker::TooSoon);
        }
        if start > self.now + i64::from(self.rules.horizon_days) * 24 * 60 * MINUTE {
            return Err(Blocker::BeyondHorizon);
        }
        let local_min = ((start - day.midnight) / MINUTE) as i32;
        if (!prefs.weekdays.is_empty() && !prefs.weekdays.contains(&day.weekday))
            || prefs.earliest_min.is_some_and(|m| local_min < m)
            || prefs.latest_min.is_some_and(|m| local_min > m)
        {
            return Err(Blocker::NotPreferred);
        }
        if !occ.free(
            &Key::Patient(patient),
            granule_of(start),
            granule_of(end + GRANULE_MICROS - 1),
            1,
        ) {
            return Err(Blocker::PatientBusy);
        }

        // Phase times.
        let mut bounds = Vec::with_capacity(ty.phases.len());
        let mut t = start;
        for p in &ty.phases {
            let e = t + i64::from(p.minutes) * MINUTE;
            bounds.push((t, e));
            t = e;
        }

        // One chair or room per place kind for the whole visit; it stays
        // blocked for the turnover buffer after its last phase.
        let mut place_of: Vec<(Place, ResourceId)> = vec![];
        for place in [Place::Chair, Place::Room, Place::Telehealth] {
            let idx: Vec<usize> = (0..ty.phases.len())
                .filter(|&i| ty.phases[i].place == place)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let Some(kind) = place.kind() else { continue };
            let need = idx.iter().fold(super::Capabilities::default(), |a, &i| {
                a.union(&ty.phases[i].needs)
            });
            let last_end =
                bounds[*idx.last().unwrap_or(&0)].1 + i64::from(ty.buffer_after_min) * MINUTE;
            let mut candidates: Vec<&Resource> = self
                .resources
                .iter()
                .filter(|r| r.kind == kind && r.caps.covers(&need))
                .collect();
            if candidates.is_empty() {
                return Err(Blocker::NoSuchResource(kind));
            }
            if let Some(pref) = prefs.resource {
                candidates.sort_by_key(|r| r.id != pref);
            }
            let chosen = candidates.into_iter().find(|r| {
                let key = Key::Resource(r.id);
                idx.iter().all(|&i| {
                    let (s, e) = bounds[i];
                    let e = if i == *idx.last().unwrap_or(&0) {
                        last_end
                    } else {
                        e
                    };
                    occ.free(&key, granule_of(s), granule_of(e + GRANULE_MICROS - 1), 1)
                })
            });
            match chosen {
                Some(r) => place_of.push((place, r.id)),
                None => return Err(Blocker::ResourceBusy(kind)),
            }
        }

        // One person per role for the whole visit, each free in every phase
        // that needs the role; different roles of a phase are different people.
        let mut person_of: Vec<(Role, UserId)> = vec![];
        let mut roles: Vec<Role> = ty
            .phases
            .iter()
            .flat_map(|p| p.staff.iter().map(|s| s.role))
            .collect();
        roles.sort();
        roles.dedup();
        for role in roles {
            let mut on_duty = false;
            let mut order: Vec<usize> = (0..self.staff.len())
                .filter(|&i| self.staff[i].roles.contains(&role))
                .collect();
            order.sort_by_key(|&i| !prefs.staff.contains(&self.staff[i].id));
            if prefs.only_these_staff
                && order
                    .iter()
                    .any(|&i| prefs.staff.contains(&self.staff[i].id))
            {
                order.retain(|&i| prefs.staff.contains(&self.staff[i].id));
            }
            let mut found = None;
            for i in order {
                let s = &self.staff[i];
                if person_of.iter().any(|(_, u)| *u == s.id) {
                    continue;
                }
                let Some((w0, w1)) = day.staff.get(i).copied().flatten() else {
                    continue;
                };
                let needs: Vec<(usize, bool)> = ty
                    .phases
                    .iter()
                    .enumerate()
                    .filter_map(|(pi, p)| {
                        p.staff
                            .iter()
                            .find(|n| n.role == role)
                            .map(|n| (pi, n.shared))
                    })
                    .collect();
                let working = needs.iter().all(|&(pi, _)| {
                    let (ps, pe) = bounds[pi];
                    ps >= w0 && pe <= w1 && !s.time_off.iter().any(|&(a, b)| a < pe && ps < b)
                });
                if !working {
                    continue;
                }
                on_duty = true;
                let key = Key::Staff(s.id);
                let ratio_mask = seat_mask(self.rules.ratio_for(role));
                let all_mask = seat_mask(seats_for(role));
                let free = needs.iter().all(|&(pi, shared)| {
                    let (ps, pe) = bounds[pi];
                    let (g0, g1) = (granule_of(ps), granule_of(pe + GRANULE_MICROS - 1));
                    if shared {
                        occ.has_seat(&key, g0, g1, ratio_mask)
                    } else {
                        occ.free(&key, g0, g1, all_mask)
                    }
                });
                if free {
                    found = Some(s.id);
                    break;
                }
            }
            match found {
                Some(u) => person_of.push((role, u)),
                None if on_duty => return Err(Blocker::StaffBusy(role)),
                None => return Err(Blocker::NoStaffOnDuty(role)),
            }
        }

        let phases = ty
            .phases
            .iter()
            .zip(&bounds)
            .map(|(p, &(s, e))| PlannedPhase {
                kind: p.kind,
                start: s,
                end: e,
                resource: place_of
                    .iter()
                    .find(|(pl, _)| *pl == p.place)
                    .map(|(_, r)| *r),
                staff: p
                    .staff
                    .iter()
                    .filter_map(|n| {
                        person_of
                            .iter()
                            .find(|(r, _)| *r == n.role)
                            .map(|(_, u)| Assignment {
                                role: n.role,
                                user: *u,
                                shared: n.shared,
                            })
                    })
                    .collect(),
            })
            .collect();
        Ok(VisitPlan {
            type_code: ty.code.clone(),
            start,
            end,
            phases,
            buffer_after_min: ty.buffer_after_min,
        })
    }

    /// Up to `limit` bookable starts for `ty` on the local dates `from..=to`,
    /// with a tally of what blocked the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn find_slots(
        &self,
        occ: &Occupancy,
        ty: &AppointmentType,
        patient: PatientId,
        from: Date,
        to: Date,
        prefs: &Preferences,
        limit: usize,
    ) -> (Vec<VisitPlan>, Tally) {
        let mut out = vec![];
        let mut tally = Tally::default();
        let mut date = from;
        while date <= to && out.len() < limit {
            let day = self.day(date);
            if day.open.is_none() {
                tally.add(Blocker::Closed);
            }
            for start in self.starts(&day, ty.total_minutes()) {
                match self.try_at(occ, &day, ty, patient, start, prefs) {
                    Ok(plan) => {
                        out.push(plan);
                        if out.len() >= limit {
                            break;
                        }
                    }
                    Err(b) => tally.add(b),
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        (out, tally)
    }
}

fn seat_mask(n: u8) -> u8 {
    if n >= 8 {
        u8::MAX
    } else {
        (1u8 << n) - 1
    }
}

/// How a visit uses one key over a run of granules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Seat 0: a chair, a room, a patient.
    Single,
    /// One seat within the role's ratio: a nurse attending several chairs.
    Shared(Role),
    /// Every seat the role has: the phase has the person to itself.
    Whole(Role),
}

/// What a planned visit occupies: the patient for the whole visit, the chair
/// or room for its phases and turnover, and each person for their phases.
/// One description serves claiming seats, loading a calendar and moving a visit.
pub fn footprint(plan: &VisitPlan, patient: PatientId) -> Vec<(Key, std::ops::Range<i64>, Use)> {
    let gs = |s: i64, e: i64| granule_of(s)..granule_of(e + GRANULE_MICROS - 1);
    let mut out = vec![(Key::Patient(patient), gs(plan.start, plan.end), Use::Single)];
    for (i, p) in plan.phases.iter().enumerate() {
        if let Some(r) = p.resource {
            let last = !plan.phases[i + 1..].iter().any(|q| q.resource == Some(r));
            let end = if last {
                p.end + i64::from(plan.buffer_after_min) * MINUTE
            } else {
                p.end
            };
            out.push((Key::Resource(r), gs(p.start, end), Use::Single));
        }
        for a in &p.staff {
            let u = if a.shared {
                Use::Shared(a.role)
            } else {
                Use::Whole(a.role)
            };
            out.push((Key::Staff(a.user), gs(p.start, p.end), u));
        }
    }
    out
}

/// The claims a planned visit makes (its [`footprint`]), with seats chosen
/// against `occ`; `None` if a needed seat is already taken.
pub fn plan_claims(
    plan: &VisitPlan,
    patient: PatientId,
    rules: &SchedulingRules,
    occ: &Occupancy,
) -> Option<Vec<Claim>> {
    let mut out = vec![];
    for (key, range, u) in footprint(plan, patient) {
        for granule in range {
            let taken = occ.bits(&key, granule);
            match u {
                Use::Single => {
                    if taken & 1 != 0 {
                        return None;
                    }
                    out.push(Claim {
                        key,
                        granule,
                        seat: 0,
                    });
                }
                Use::Shared(role) => {
                    let seat = (0..rules.ratio_for(role)).find(|s| taken & (1 << s) == 0)?;
                    out.push(Claim { key, granule, seat });
                }
                Use::Whole(role) => {
                    for seat in 0..seats_for(role) {
                        if taken & (1 << seat) != 0 {
                            return None;
                        }
                        out.push(Claim { key, granule, seat });
                    }
                }
            }
        }
    }
    Some(out)
}
