//! The demo organisation: two clinics (Glendale, Arizona, modelled on a seed
//! clinic, with no DST; Denver, Colorado, with DST), staff in every role and
//! about forty patients with varied details. Loaded once into an empty database.

use anyhow::Context;
use domain::audit::Action;
use domain::auth::Role;
use domain::clinics::{ClinicSettings, DayHours};
use domain::ids::{ClinicId, OrgId};
use domain::patients::{PatientDetails, PatientInput};
use store::audit::NewAuditEvent;
use store::Store;

pub const DEMO_PASSWORD: &str = "stillwater-demo";

/// A demo account: who, and the (clinic, role) grants, where 'G' is Glendale
/// and 'D' is Denver.
pub struct DemoStaff {
    pub username: &'static str,
    pub name: &'static str,
    pub roles: &'static str,
    grants: &'static [(char, Role)],
}

pub const STAFF: &[DemoStaff] = &[
    DemoStaff {
        username: "dana.frontdesk",
        name: "Dana Whitfield",
        roles: "front desk, Glendale",
        grants: &[('G', Role::FrontDesk)],
    },
    DemoStaff {
        username: "devon.frontdesk",
        name: "Devon Price",
        roles: "front desk, Denver",
        grants: &[('D', Role::FrontDesk)],
    },
    DemoStaff {
        username: "nina.nurse",
        name: "Nina Okafor, RN",
        roles: "nurse, Glendale",
        grants: &[('G', Role::Nurse)],
    },
    DemoStaff {
        username: "nate.nurse",
        name: "Nate Kowalski, RN",
        roles: "nurse, Denver",
        grants: &[('D', Role::Nurse)],
    },
    DemoStaff {
        username: "nora.nurse",
        name: "Nora Castillo, RN",
        roles: "nurse, Glendale",
        grants: &[('G', Role::Nurse)],
    },
    DemoStaff {
        username: "paul.prescriber",
        name: "Dr. Paul Reyes, MD",
        roles: "prescriber and medical director, both clinics",
        grants: &[('G', Role::Prescriber), ('D', Role::Prescriber)],
    },
    DemoStaff {
        username: "mona.monitor",
        name: "Dr. Mona Lindqvist, MD",
        roles: "monitoring clinician (anesthesiology), Glendale",
        grants: &[('G', Role::MonitoringClinician)],
    },
    DemoStaff {
        username: "victor.crna",
        name: "Victor Adams, CRNA",
        roles: "monitoring clinician (nurse anesthetist), Denver",
        grants: &[('D', Role::MonitoringClinician)],
    },
    DemoStaff {
        username: "theo.therapist",
        name: "Theo Brandt, LPC",
        roles: "therapist, both clinics",
        grants: &[('G', Role::Therapist), ('D', Role::Therapist)],
    },
    DemoStaff {
        username: "tessa.therapist",
        name: "Tessa Moreno, LMFT",
        roles: "therapist (EMDR, IFS), Glendale",
        grants: &[('G', Role::Therapist)],
    },
    DemoStaff {
        username: "ada.admin",
        name: "Ada Morales",
        roles: "clinic admin, both clinics",
        grants: &[('G', Role::ClinicAdmin), ('D', Role::ClinicAdmin)],
    },
    DemoStaff {
        username: "audrey.auditor",
        name: "Audrey Chen",
        roles: "auditor, both clinics",
        grants: &[('G', Role::Auditor), ('D', Role::Auditor)],
    },
];

fn hours(spec: &[(i16, &str, &str)]) -> Vec<DayHours> {
    spec.iter()
        .filter_map(|(d, o, c)| DayHours::new(*d, o, c).ok())
        .collect()
}

pub fn glendale() -> ClinicSettings {
    ClinicSettings {
        name: "Stillwater Glendale".into(),
        address_line1: "18400 N 51st Ave, Suite 210".into(),
        address_line2: None,
        city: "Glendale".into(),
        region: "AZ".into(),
        postal_code: "85308".into(),
        country: "US".into(),
        phone: "(602) 555-0142".into(),
        email: Some("glendale@stillwater.example".into()),
        time_zone: "America/Phoenix".into(),
        video_link: Some("https://meet.stillwater.example/glendale/{visit}".into()),
        hours: hours(&[
            (1, "07:00", "16:30"),
            (2, "07:00", "16:30"),
            (3, "07:00", "16:30"),
            (4, "07:00", "16:30"),
            (5, "08:00", "12:00"),
        ]),
    }
}

pub fn denver() -> ClinicSettings {
    ClinicSettings {
        name: "Stillwater Denver".into(),
        address_line1: "1550 Wewatta St, Floor 3".into(),
        address_line2: None,
        city: "Denver".into(),
        region: "CO".into(),
        postal_code: "80202".into(),
        country: "US".into(),
        phone: "(303) 555-0187".into(),
        email: Some("denver@stillwater.example".into()),
        time_zone: "America/Denver".into(),
        video_link: Some("https://meet.stillwater.example/denver/{visit}".into()),
        hours: hours(&[
            (1, "08:00", "17:00"),
            (2, "08:00", "17:00"),
            (3, "08:00", "19:00"),
            (4, "08:00", "17:00"),
            (5, "08:00", "15:00"),
            (6, "09:00", "13:00"),
        ]),
    }
}

const GIVEN: &[&str] = &[
    "Maria", "James", "Aisha", "Daniel", "Sofia", "Marcus", "Emily", "Hiroshi", "Grace", "Luis",
    "Hannah", "Omar", "Chloe", "Ethan", "Priya", "Noah", "Fatima", "Lucas", "Olivia", "Mateo",
    "Zoe", "Samuel", "Leah", "Diego", "Ava", "Kwame", "Isabella", "Ryan", "Mei", "Jordan",
    "Camila", "Elijah", "Nora", "Tariq", "Ruby", "Gabriel", "Alma", "Wesley", "Ingrid", "Caleb",
];
const FAMILY: &[&str] = &[
    "Lopez",
    "Carter",
    "Rahman",
    "Nguyen",
    "Rossi",
    "Bennett",
    "Walsh",
    "Tanaka",
    "Okonkwo",
    "Herrera",
    "Schmidt",
    "Haddad",
    "Dubois",
    "Murphy",
    "Patel",
    "Kim",
    "Aziz",
    "Silva",
    "Brooks",
    "Fernandez",
    "Novak",
    "Adeyemi",
    "Cohen",
    "Morales",
    "Jensen",
    "Mensah",
    "Romano",
    "O'Neil",
    "Chen",
    "Ellis",
    "Vargas",
    "Grant",
    "Lindgren",
    "Qureshi",
    "Hayes",
    "Moreau",
    "Castillo",
    "Whitaker",
    "Berg",
    "Sutherland",
];
const RELATIONS: &[&str] = &[
    "Spouse",
    "Partner",
    "Mother",
    "Father",
    "Sister",
    "Brother",
    "Friend",
    "Adult child",
];
const ESCORT_FIRST: &[&str] = &[
    "Alex", "Jamie", "Robin", "Casey", "Morgan", "Taylor", "Jesse", "Riley",
];

/// A small deterministic generator so the demo is the same on every machine.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Patient `i` of the demo (or of a benchmark's larger population).
pub fn patient(i: usize, in_denver: bool) -> PatientInput {
    let mut r = Lcg(i as u64 * 7919 + 17);
    let given = GIVEN[i % GIVEN.len()];
    let family = FAMILY[(i * 7 + i / FAMILY.len()) % FAMILY.len()];
    let year = 1958 + r.below(45) as i32;
    let month = 1 + r.below(12);
    let day = 1 + r.below(28);
    let (area, city, region, zip) = if in_denver {
        ("303", "Denver", "CO", "80205")
    } else {
        ("602", "Phoenix", "AZ", "85021")
    };
    let phone = format!("({area}) 555-{:04}", 100 + (i * 37) % 9800);
    let has_escort = r.below(4) != 0;
    let escort_first = ESCORT_FIRST[r.below(ESCORT_FIRST.len() as u64) as usize];
    let relation = RELATIONS[r.below(RELATIONS.len() as u64) as usize];
    let sex = ["female", "male", "female", "male", "intersex", "unknown"][r.below(6) as usize];
    PatientInput {
        given_name: Some(given.into()),
        family_name: Some(family.into()),
        preferred_name: (r.below(6) == 0).then(|| given.chars().take(3).collect()),
        date_of_birth: Some(format!("{year}-{month:02}-{day:02}")),
        sex_at_birth: (r.below(5) != 0).then(|| sex.into()),
        pronouns: (r.below(3) == 0)
            .then(|| ["she/her", "he/him", "they/them"][r.below(3) as usize].into()),
        phone: Some(phone),
        email: (r.below(5) != 0).then(|| {
            format!(
                "{}.{}{}@example.com",
                given.to_lowercase(),
                family.to_lowercase().replace('\'', ""),
                i
            )
        }),
        address_line1: Some(
            format!(
                "{} {} {}",
                100 + r.below(9000),
                [
                    "N 7th St",
                    "E Camelback Rd",
                    "W Glendale Ave",
                    "S Broadway",
                    "Colfax Ave",
                    "Larimer St"
                ][r.below(6) as usize],
                if r.below(3) == 0 { "Apt 4" } else { "" }
            )
            .trim()
            .to_string(),
        ),
        address_line2: None,
        city: Some(city.into()),
        region: Some(region.into()),
        postal_code: Some(zip.into()),
        emergency_contact_name: Some(format!("{} {}", escort_first, family)),
        emergency_contact_phone: Some(format!("({area}) 555-{:04}", 200 + (i * 53) % 9700)),
        emergency_contact_relation: Some(relation.into()),
        escort_name: has_escort.then(|| format!("{} {}", escort_first, family)),
        escort_phone: has_escort.then(|| format!("({area}) 555-{:04}", 200 + (i * 53) % 9700)),
    }
}

/// The rest of the demo as `stillwater demo` shows it, after `load` made
/// the organisation: the calendar, measures, the pre-treatment record, the
/// Schedule III record, today's floor and billing.
pub async fn load_rest(
    store: &Store,
    protocols: &domain::protocols::Protocols,
    instruments: &domain::instruments::Registry,
) -> anyhow::Result<()> {
    load_calendar(store).await?;
    crate::demo_measures::load(store, instruments).await?;
    crate::demo_intake::load(store, protocols, instruments).await?;
    crate::demo_substances::load(store, protocols, instruments).await?;
    crate::demo_treatment::load(store, protocols, instruments).await?;
    crate::demo_billing::load(store).await?;
    Ok(())
}

/// Loads the demo's organisation, staff, patients and resources if the
/// database has none. Returns whether it loaded.
pub async fn load(store: &Store, password_hash: &str) -> anyhow::Result<bool> {
    if store.user_id_by_username("ada.admin").await?.is_some() {
        return Ok(false);
    }
    let org = store.create_org("Stillwater Demo Health").await?;
    let g = store.create_clinic(org, &glendale()).await?;
    let d = store.create_clinic(org, &denver()).await?;
    let cli = |a: Action| {
        let mut e = NewAuditEvent::new(a, "demo-loader");
        e.org_id = Some(org.to_string());
        e.source_ip = Some("cli".into());
        e
    };
    for staff in STAFF {
        let username = staff.username;
        let u = store
            .create_user(
                &store::auth::NewUser {
                    org_id: org,
                    username,
                    display_name: staff.name,
                    email: Some(&format!("{username}@stillwater.example")),
                    password_hash,
                },
                cli(Action::UserCreate),
            )
            .await
            .with_context(|| format!("creating {username}"))?;
        for (k, role) in staff.grants {
            let clinic = if *k == 'G' { g } else { d };
            let mut ev = cli(Action::RoleGrant);
            ev.clinic_id = Some(clinic.to_string());
            ev.object_type = Some("user".into());
            ev.object_id = Some(u.to_string());
            ev.detail = Some(format!("granted {role}"));
            store.grant_role(u, clinic, *role, None, ev).await?;
        }
        // The prescriber is the medical director: protocol versions are
        // approved by them.
        if username == "paul.prescriber" {
            store
                .set_medical_director(u, true, cli(Action::MedicalDirectorSet))
                .await?;
        }
    }
    load_patients(store, org, g, 0..26, false).await?;
    load_patients(store, org, d, 26..40, true).await?;
    let ev = cli(Action::ClinicUpdate);
    store
        .add_closure(g, "2026-11-26".parse()?, "Thanksgiving Day", ev.clone())
        .await?;
    store
        .add_closure(d, "2026-11-26".parse()?, "Thanksgiving Day", ev.clone())
        .await?;
    store
        .add_closure(g, "2026-12-25".parse()?, "Christmas Day", ev.clone())
        .await?;
    store
        .add_closure(d, "2026-12-25".parse()?, "Christmas Day", ev.clone())
        .await?;
    store
        .add_closure(g, "2027-01-01".parse()?, "New Year's Day", ev.clone())
        .await?;
    store
        .add_closure(d, "2027-01-01".parse()?, "New Year's Day", ev)
        .await?;
    load_resources(store, org, g, d).await?;
    Ok(true)
}

/// Chairs, rooms, appointment types and staff hours of both clinics.
pub async fn load_resources(
    store: &Store,
    org: OrgId,
    g: ClinicId,
    d: ClinicId,
) -> anyhow::Result<()> {
    use domain::scheduling::{Capabilities, ResourceKind};
    let ev = || {
        let mut e = NewAuditEvent::new(Action::ScheduleSettings, "demo-loader");
        e.org_id = Some(org.to_string());
        e.source_ip = Some("cli".into());
        e
    };
    let iv = Capabilities {
        iv: true,
        monitored: true,
        private: false,
    };
    let recliner = Capabilities {
        iv: false,
        monitored: true,
        private: false,
    };
    let room = Capabilities {
        iv: false,
        monitored: false,
        private: true,
    };
    let g_res: &[(ResourceKind, &str, Capabilities)] = &[
        (ResourceKind::Chair, "Chair 1", iv),
        (ResourceKind::Chair, "Chair 2", iv),
        (ResourceKind::Chair, "Chair 3", iv),
        (ResourceKind::Chair, "Chair 4", iv),
        (ResourceKind::Chair, "Recliner 5", recliner),
        (ResourceKind::Chair, "Recliner 6", recliner),
        (ResourceKind::Room, "Consult room A", room),
        (ResourceKind::Room, "Therapy room B", room),
        (
            ResourceKind::Telehealth,
            "Video room",
            Capabilities::default(),
        ),
    ];
    let d_res: &[(ResourceKind, &str, Capabilities)] = &[
        (ResourceKind::Chair, "Chair 1", iv),
        (ResourceKind::Chair, "Chair 2", iv),
        (ResourceKind::Chair, "Chair 3", iv),
        (ResourceKind::Room, "Consult room", room),
        (ResourceKind::Room, "Therapy room", room),
        (
            ResourceKind::Telehealth,
            "Video room",
            Capabilities::default(),
        ),
    ];
    for (clinic, list) in [(g, g_res), (d, d_res)] {
        for (kind, name, caps) in list {
            let mut e = ev();
            e.clinic_id = Some(clinic.to_string());
            store.create_resource(clinic, *kind, name, *caps, e).await?;
        }
        store.install_default_types(clinic).await?;
    }
    // Working hours: most staff work the clinic's hours; the prescriber splits
    // the week between the clinics and the therapists keep their own days.
    let gh = glendale().hours;
    let dh = denver().hours;
    let only = |h: &[DayHours], days: &[i16]| -> Vec<DayHours> {
        h.iter()
            .filter(|x| days.contains(&x.weekday))
            .copied()
            .collect()
    };
    let plan: Vec<(&str, ClinicId, Vec<DayHours>)> = vec![
        ("nina.nurse", g, gh.clone()),
        ("nora.nurse", g, only(&gh, &[1, 2, 3, 4])),
        ("mona.monitor", g, gh.clone()),
        ("paul.prescriber", g, only(&gh, &[1, 2, 3])),
        ("paul.prescriber", d, only(&dh, &[4, 5])),
        ("tessa.therapist", g, gh.clone()),
        ("theo.therapist", g, only(&gh, &[1, 3])),
        ("theo.therapist", d, only(&dh, &[2, 4, 5])),
        ("nate.nurse", d, dh.clone()),
        ("victor.crna", d, dh.clone()),
    ];
    for (username, clinic, hours) in plan {
        let u = store
            .user_id_by_username(username)
            .await?
            .with_context(|| format!("demo user {username}"))?;
        let mut e = ev();
        e.clinic_id = Some(clinic.to_string());
        store.set_staff_hours(u, clinic, &hours, e).await?;
    }
    Ok(())
}

pub async fn load_patients(
    store: &Store,
    org: OrgId,
    clinic: ClinicId,
    range: std::ops::Range<usize>,
    denver: bool,
) -> anyhow::Result<()> {
    let today = jiff::civil::date(2026, 11, 23);
    let details: Vec<PatientDetails> = range
        .map(|i| PatientDetails::validate(&patient(i, denver), today))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("demo patient invalid: {e}"))?;
    let mut ev = NewAuditEvent::new(Action::PatientCreate, "demo-loader");
    ev.org_id = Some(org.to_string());
    ev.source_ip = Some("cli".into());
    store
        .create_patients_bulk(org, clinic, &details, ev)
        .await?;
    Ok(())
}

/// A clinic in full swing: induction series, weekly maintenance, intakes,
/// consultations and follow-ups from the start of this week to four weeks
/// ahead. Visits already past are marked completed (a few no-shows and a
/// late cancellation among them). Placed by the same search staff use.
pub async fn load_calendar(store: &Store) -> anyhow::Result<usize> {
    use domain::scheduling::{
        find_series, plan_claims, AppointmentType, CourseKind, CourseSpec, Preferences,
    };
    use store::scheduling::{NewSeries, NewVisit, Status};

    let Some(org) = store.any_org().await? else {
        return Ok(0);
    };
    let clinics = store.clinics_of_org(org).await?;
    let mut booked = 0usize;
    let now = store.now();
    let ev = |clinic: ClinicId, patient: domain::ids::PatientId, a: Action, obj: String| {
        let mut e = NewAuditEvent::new(a, "demo-loader");
        e.org_id = Some(org.to_string());
        e.clinic_id = Some(clinic.to_string());
        e.patient_id = Some(patient.to_string());
        e.object_type = Some("appointment".into());
        e.object_id = Some(obj);
        e.source_ip = Some("cli".into());
        e
    };
    for clinic in clinics {
        let tz = jiff::tz::TimeZone::get(&clinic.settings.time_zone)?;
        let today = domain::time::to_timestamp(now).to_zoned(tz.clone()).date();
        let mut monday = today;
        while monday.weekday() != jiff::civil::Weekday::Monday {
            monday = monday.yesterday()?;
        }
        let week_start = domain::scheduling::local_to_micros(&tz, monday, 0).unwrap_or(now);
        let end = week_start + 36 * 86_400_000_000;
        let mut cal = store.calendar(clinic.id, week_start, end, None).await?;
        // Book as if it were Monday morning, so this week is full too.
        cal.now = week_start;
        let types = store.appointment_types(clinic.id).await?;
        let ty = |code: &str| types.iter().find(|t| t.code == code).cloned();
        let (Some(iv), Some(integ)) = (ty("iv_infusion"), ty("integration")) else {
            continue;
        };
        let patients = store.search_patients(&[clinic.id], "", 200).await?;
        let big = clinic.slug == "stillwater-glendale";
        let n_induction = if big { 9 } else { 4 };
        type Visit = (
            AppointmentType,
            domain::scheduling::VisitPlan,
            Option<i32>,
            Option<&'static str>,
        );
        let mut plans: Vec<(domain::ids::PatientId, Option<NewSeries>, Vec<Visit>)> = vec![];
        for (i, p) in patients.iter().enumerate() {
            // Courses start this week, at varied times of day.
            let start_day = monday.checked_add(jiff::Span::new().days(i as i64 % 5))?;
            let prefs = Preferences {
                earliest_min: Some(7 * 60 + (i as i32 % 4) * 90),
                ..Preferences::default()
            };
            let (kind, doses) = if i < n_induction {
                (CourseKind::Induction, None)
            } else if i < n_induction + if big { 5 } else { 3 } {
                (CourseKind::Weekly, Some(4))
            } else {
                break;
            };
            let spec = CourseSpec::preset(kind, "iv_infusion", doses, Some(1));
            let Ok(plan) = find_series(
                &cal,
                &iv,
                Some(&integ),
                &spec,
                p.id,
                start_day,
                start_day.checked_add(jiff::Span::new().days(10))?,
                &prefs,
            ) else {
                continue;
            };
            let mut visits = vec![];
            for (k, s) in plan.steps.iter().enumerate() {
                visits.push((iv.clone(), s.dose.clone(), Some(k as i32 + 1), Some("dose")));
                if let Some(x) = &s.integration {
                    visits.push((
                        integ.clone(),
                        x.clone(),
                        Some(k as i32 + 1),
                        Some("integration"),
                    ));
                }
            }
            for (_, v, _, _) in &visits {
                if let Some(c) = plan_claims(v, p.id, &cal.rules, &cal.occupancy) {
                    c.iter().for_each(|x| cal.occupancy.add(x));
                }
            }
            plans.push((
                p.id,
                Some(NewSeries {
                    id: domain::ids::SeriesId::new(),
                    spec,
                }),
                visits,
            ));
        }
        // Single visits: intakes, consultations, follow-ups for the rest.
        let singles = [
            "intake",
            "consultation",
            "follow_up",
            "consultation_video",
            "im_injection",
            "intranasal",
        ];
        for (j, p) in patients
            .iter()
            .enumerate()
            .skip(n_induction + if big { 5 } else { 3 })
        {
            let Some(t) = ty(singles[j % singles.len()]) else {
                continue;
            };
            let day = monday.checked_add(jiff::Span::new().days((j as i64 * 2) % 12))?;
            let (slots, _) = cal.find_slots(
                &cal.occupancy,
                &t,
                p.id,
                day,
                day.checked_add(jiff::Span::new().days(4))?,
                &Preferences::default(),
                3,
            );
            let Some(v) = slots.get(j % 3).or(slots.first()).cloned() else {
                continue;
            };
            if let Some(c) = plan_claims(&v, p.id, &cal.rules, &cal.occupancy) {
                c.iter().for_each(|x| cal.occupancy.add(x));
                plans.push((p.id, None, vec![(t, v, None, None)]));
            }
        }
        // Insert with exact claims (the database is empty of this clinic's
        // visits, so the in-memory seats are the true ones).
        let mut occ = store.claims_on(&[], 0, 0, None).await?;
        for (pid, series, visits) in plans {
            let mut new = vec![];
            let mut events = vec![];
            for (t, v, idx, role) in visits {
                let Some(claims) = plan_claims(&v, pid, &cal.rules, &occ) else {
                    continue;
                };
                claims.iter().for_each(|x| occ.add(x));
                let id = domain::ids::AppointmentId::new();
                events.push(ev(
                    clinic.id,
                    pid,
                    Action::AppointmentCreate,
                    id.to_string(),
                ));
                new.push(NewVisit {
                    id,
                    type_name: t.name.clone(),
                    plan: v,
                    claims,
                    series_index: idx,
                    series_role: role,
                });
            }
            booked += new.len();
            store
                .insert_visits(clinic.id, pid, series.as_ref(), &new, None, events, &[])
                .await?;
            for (k, v) in new.iter().enumerate() {
                if v.plan.end < now {
                    let (status, reason) = match (k + v.plan.start as usize / 1_000_000) % 23 {
                        0 => (Status::NoShow, None),
                        _ => (Status::Completed, None::<&str>),
                    };
                    let e = ev(clinic.id, pid, Action::AppointmentUpdate, v.id.to_string());
                    store
                        .set_visit_status(v.id, status, reason, false, e)
                        .await?;
                } else if v.plan.start < now + 20 * 3_600_000_000 && k == 3 {
                    let e = ev(clinic.id, pid, Action::AppointmentUpdate, v.id.to_string());
                    store
                        .set_visit_status(
                            v.id,
                            Status::Cancelled,
                            Some("Patient unwell (called in)"),
                            true,
                            e,
                        )
                        .await?;
                }
            }
        }
    }
    Ok(booked)
}
