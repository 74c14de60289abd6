//! The patient registry. Every query is scoped to the clinics the caller may
//! see: a patient outside them does not exist as far as the caller can tell.

use domain::ids::{ClinicId, OrgId, PatientId, UserId};
use domain::patients::{mrn_from_bits, PatientDetails};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::org::parse_id as parse_stored;
use crate::{append_in_tx, is_unique_violation, like_escape, on_pool, placeholders, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRecord {
    pub id: PatientId,
    pub clinic_id: ClinicId,
    pub mrn: String,
    pub details: PatientDetails,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct PatientRow {
    id: String,
    clinic_id: String,
    mrn: String,
    given_name: String,
    family_name: String,
    preferred_name: Option<String>,
    date_of_birth: String,
    sex_at_birth: Option<String>,
    pronouns: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address_line1: Option<String>,
    address_line2: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    emergency_contact_name: Option<String>,
    emergency_contact_phone: Option<String>,
    emergency_contact_relation: Option<String>,
    escort_name: Option<String>,
    escort_phone: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, clinic_id, mrn, given_name, family_name, preferred_name, date_of_birth, \
     sex_at_birth, pronouns, phone, email, address_line1, address_line2, city, region, postal_code, \
     emergency_contact_name, emergency_contact_phone, emergency_contact_relation, escort_name, \
     escort_phone, created_at, updated_at";

/// Inserts one patient row inside an open transaction (registration, and a
/// lead booking its consultation, which registers the person in the same
/// transaction as the visit).
#[macro_export]
macro_rules! insert_patient {
    ($tx:expr, $id:expr, $org:expr, $clinic:expr, $mrn:expr, $d:expr, $now:expr, $by:expr) => {{
        let d: &domain::patients::PatientDetails = $d;
        let mrn: &str = $mrn;
        let r: $crate::Result<()> = sqlx::query(&$crate::patients::insert_sql())
            .bind($id.to_string())
            .bind($clinic.to_string())
            .bind(mrn)
            .bind(&d.given_name)
            .bind(&d.family_name)
            .bind(&d.preferred_name)
            .bind(d.date_of_birth.to_string())
            .bind(&d.sex_at_birth)
            .bind(&d.pronouns)
            .bind(&d.phone)
            .bind(&d.email)
            .bind(&d.address_line1)
            .bind(&d.address_line2)
            .bind(&d.city)
            .bind(&d.region)
            .bind(&d.postal_code)
            .bind(&d.emergency_contact_name)
            .bind(&d.emergency_contact_phone)
            .bind(&d.emergency_contact_relation)
            .bind(&d.escort_name)
            .bind(&d.escort_phone)
            .bind($now)
            .bind($now)
            .bind($org.to_string())
            .bind(d.search_text(mrn))
            .bind($by.map(|u: domain::ids::UserId| u.to_string()))
            .execute(&mut *$tx)
            .await
            .map(|_| ())
            .map_err(Into::into);
        r
    }};
}

#[doc(hidden)]
pub fn insert_sql() -> String {
    format!(
        "INSERT INTO patients ({COLUMNS}, org_id, search_text, created_by) VALUES ({})",
        placeholders(1, 26)
    )
}

impl PatientRow {
    /// The row from a rusqlite read of [`COLUMNS`], in their order.
    fn from_sqlite(r: &rusqlite::Row) -> rusqlite::Result<PatientRow> {
        Ok(PatientRow {
            id: r.get(0)?,
            clinic_id: r.get(1)?,
            mrn: r.get(2)?,
            given_name: r.get(3)?,
            family_name: r.get(4)?,
            preferred_name: r.get(5)?,
            date_of_birth: r.get(6)?,
            sex_at_birth: r.get(7)?,
            pronouns: r.get(8)?,
            phone: r.get(9)?,
            email: r.get(10)?,
            address_line1: r.get(11)?,
            address_line2: r.get(12)?,
            city: r.get(13)?,
            region: r.get(14)?,
            postal_code: r.get(15)?,
            emergency_contact_name: r.get(16)?,
            emergency_contact_phone: r.get(17)?,
            emergency_contact_relation: r.get(18)?,
            escort_name: r.get(19)?,
            escort_phone: r.get(20)?,
            created_at: r.get(21)?,
            updated_at: r.get(22)?,
        })
    }

    fn into_record(self) -> Result<PatientRecord> {
        Ok(PatientRecord {
            id: parse_stored(&self.id)?,
            clinic_id: parse_stored(&self.clinic_id)?,
            mrn: self.mrn,
            details: PatientDetails {
                given_name: self.given_name,
                family_name: self.family_name,
                preferred_name: self.preferred_name,
                date_of_birth: parse_stored(&self.date_of_birth)?,
                sex_at_birth: self.sex_at_birth,
                pronouns: self.pronouns,
                phone: self.phone,
                email: self.email,
                address_line1: self.address_line1,
                address_line2: self.address_line2,
                city: self.city,
                region: self.region,
                postal_code: self.postal_code,
                emergency_contact_name: self.emergency_contact_name,
                emergency_contact_phone: self.emergency_contact_phone,
                emergency_contact_relation: self.emergency_contact_relation,
                escort_name: self.escort_name,
                escort_phone: self.escort_phone,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Search words: at most 6, each at most 60 characters. Phone-like words are
/// reduced to digits so "(602) 555-0101" finds "6025550101".
pub fn search_terms(q: &str) -> Vec<String> {
    q.split_whitespace()
        .take(6)
        .map(|w| {
            let w: String = w.chars().take(60).collect::<String>().to_lowercase();
            let is_date = w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-';
            let phoneish = w.chars().any(|c| c.is_ascii_digit())
                && w.chars().all(|c| c.is_ascii_digit() || "()-.+".contains(c));
            if phoneish && !is_date {
                w.chars().filter(char::is_ascii_digit).collect()
            } else {
                w
            }
        })
        .filter(|w| !w.is_empty())
        .collect()
}

impl Store {
    /// Registers a patient with a fresh MRN; the audit record commits with it.
    pub async fn create_patient(
        &self,
        org: OrgId,
        clinic: ClinicId,
        d: &PatientDetails,
        by: Option<UserId>,
        audit: NewAuditEvent,
    ) -> Result<PatientRecord> {
        for _ in 0..5 {
            let id = PatientId::new();
            let mrn = mrn_from_bits(rand_bits());
            let now = self.now();
            let mut ev = audit.clone();
            ev.patient_id = Some(id.to_string());
            ev.clinic_id = Some(clinic.to_string());
            ev.object_type = Some("patient".into());
            ev.object_id = Some(id.to_string());
            let r: Result<()> = on_pool!(self.write(), p => async {
                let mut tx = p.begin().await?;
                crate::insert_patient!(tx, id, org, clinic, &mrn, d, now, by)?;
                append_in_tx!(tx, &[ev], self.now())?;
                tx.commit().await?;
                Ok(())
            }.await);
            match r {
                Ok(()) => {
                    return Ok(PatientRecord {
                        id,
                        clinic_id: clinic,
                        mrn,
                        details: d.clone(),
                        created_at: now,
                        updated_at: now,
                    })
                }
                Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "mrn") => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict("could not assign a unique MRN; try again".into()).into())
    }

    /// Registers many patients in one transaction (imports, demo data,
    /// benchmarks). Each gets its own audit record, committed with it.
    pub async fn create_patients_bulk(
        &self,
        org: OrgId,
        clinic: ClinicId,
        details: &[PatientDetails],
        audit: NewAuditEvent,
    ) -> Result<Vec<PatientRecord>> {
        // An MRN that collides with an existing one rolls the batch back; new
        // MRNs are drawn and the batch tried again.
        for _ in 0..5 {
            match self.try_bulk(org, clinic, details, &audit).await {
                Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "mrn") => continue,
                other => return other,
            }
        }
        Err(DomainError::Conflict("could not assign unique MRNs; try again".into()).into())
    }

    async fn try_bulk(
        &self,
        org: OrgId,
        clinic: ClinicId,
        details: &[PatientDetails],
        audit: &NewAuditEvent,
    ) -> Result<Vec<PatientRecord>> {
        let now = self.now();
        let mut out = Vec::with_capacity(details.len());
        let mut events = Vec::with_capacity(details.len());
        let mut seen = std::collections::HashSet::new();
        for d in details {
            let id = PatientId::new();
            let mut mrn = mrn_from_bits(rand_bits());
            while !seen.insert(mrn.clone()) {
                mrn = mrn_from_bits(rand_bits());
            }
            let mut ev = audit.clone();
            ev.patient_id = Some(id.to_string());
            ev.clinic_id = Some(clinic.to_string());
            ev.object_type = Some("patient".into());
            ev.object_id = Some(id.to_string());
            events.push(ev);
            out.push(PatientRecord {
                id,
                clinic_id: clinic,
                mrn,
                details: d.clone(),
                created_at: now,
                updated_at: now,
            });
        }
        let sql = format!(
            "INSERT INTO patients ({COLUMNS}, org_id, search_text, created_by) VALUES ({})",
            placeholders(1, 26)
        );
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            for r in &out {
                let d = &r.details;
                sqlx::query(&sql)
                    .bind(r.id.to_string()).bind(clinic.to_string()).bind(&r.mrn)
                    .bind(&d.given_name).bind(&d.family_name).bind(&d.preferred_name)
                    .bind(d.date_of_birth.to_string()).bind(&d.sex_at_birth).bind(&d.pronouns)
                    .bind(&d.phone).bind(&d.email).bind(&d.address_line1).bind(&d.address_line2)
                    .bind(&d.city).bind(&d.region).bind(&d.postal_code)
                    .bind(&d.emergency_contact_name).bind(&d.emergency_contact_phone)
                    .bind(&d.emergency_contact_relation).bind(&d.escort_name).bind(&d.escort_phone)
                    .bind(now).bind(now).bind(org.to_string()).bind(d.search_text(&r.mrn))
                    .bind(None::<String>)
                    .execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &events, self.now())?;
            tx.commit().await?;
        });
        Ok(out)
    }

    /// A patient, if it belongs to one of `clinics`.
    pub async fn patient(
        &self,
        id: PatientId,
        clinics: &[ClinicId],
    ) -> Result<Option<PatientRecord>> {
        if clinics.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM patients WHERE id = $1 AND clinic_id IN ({})",
            placeholders(2, clinics.len())
        );
        let id = id.to_string();
        let clinics: Vec<String> = clinics.iter().map(|c| c.to_string()).collect();
        let inline = self.sqlite_point_read(|c| {
            use rusqlite::OptionalExtension;
            let mut st = c.prepare_cached(&sql)?;
            let args = std::iter::once(&id).chain(&clinics);
            st.query_row(rusqlite::params_from_iter(args), PatientRow::from_sqlite)
                .optional()
        });
        let row: Option<PatientRow> = match inline {
            Some(row) => row?,
            None => on_pool!(self.read(), p => {
                let mut q = sqlx::query_as::<_, PatientRow>(&sql).bind(&id);
                for c in &clinics { q = q.bind(c); }
                q.fetch_optional(p).await?
            }),
        };
        row.map(PatientRow::into_record).transpose()
    }

    /// Replaces a patient's details, if it belongs to one of `clinics`.
    pub async fn update_patient(
        &self,
        id: PatientId,
        clinics: &[ClinicId],
        d: &PatientDetails,
        audit: NewAuditEvent,
    ) -> Result<PatientRecord> {
        let current = self
            .patient(id, clinics)
            .await?
            .ok_or(DomainError::NotFound)?;
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE patients SET given_name = $2, family_name = $3, preferred_name = $4, \
                 date_of_birth = $5, sex_at_birth = $6, pronouns = $7, phone = $8, email = $9, \
                 address_line1 = $10, address_line2 = $11, city = $12, region = $13, postal_code = $14, \
                 emergency_contact_name = $15, emergency_contact_phone = $16, emergency_contact_relation = $17, \
                 escort_name = $18, escort_phone = $19, search_text = $20, updated_at = $21 \
                 WHERE id = $1 AND clinic_id = $22")
                .bind(id.to_string()).bind(&d.given_name).bind(&d.family_name).bind(&d.preferred_name)
                .bind(d.date_of_birth.to_string()).bind(&d.sex_at_birth).bind(&d.pronouns)
                .bind(&d.phone).bind(&d.email).bind(&d.address_line1).bind(&d.address_line2)
                .bind(&d.city).bind(&d.region).bind(&d.postal_code)
                .bind(&d.emergency_contact_name).bind(&d.emergency_contact_phone)
                .bind(&d.emergency_contact_relation).bind(&d.escort_name).bind(&d.escort_phone)
                .bind(d.search_text(&current.mrn)).bind(now).bind(current.clinic_id.to_string())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(PatientRecord {
            details: d.clone(),
            updated_at: now,
            ..current
        })
    }

    /// Patients of `clinics` matching every search word (name, date of birth,
    /// phone digits, e-mail, MRN), by family name.
    pub async fn search_patients(
        &self,
        clinics: &[ClinicId],
        q: &str,
        limit: i64,
    ) -> Result<Vec<PatientRecord>> {
        if clinics.is_empty() {
            return Ok(vec![]);
        }
        let terms = search_terms(q);
        let mut sql = format!(
            "SELECT {COLUMNS} FROM patients WHERE clinic_id IN ({})",
            placeholders(1, clinics.len())
        );
        let mut n = clinics.len();
        for _ in &terms {
            n += 1;
            sql += &format!(" AND search_text LIKE ${n} ESCAPE '\\'");
        }
        sql += &format!(" ORDER BY family_name, given_name, id LIMIT ${}", n + 1);
        let rows: Vec<PatientRow> = on_pool!(self.read(), p => {
            let mut qq = sqlx::query_as::<_, PatientRow>(&sql);
            for c in clinics { qq = qq.bind(c.to_string()); }
            for t in &terms { qq = qq.bind(format!("%{}%", like_escape(t))); }
            qq.bind(limit.clamp(1, 200)).fetch_all(p).await?
        });
        rows.into_iter().map(PatientRow::into_record).collect()
    }

    pub async fn count_patients(&self, clinics: &[ClinicId]) -> Result<i64> {
        if clinics.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "SELECT COUNT(*) FROM patients WHERE clinic_id IN ({})",
            placeholders(1, clinics.len())
        );
        let (n,): (i64,) = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in clinics { q = q.bind(c.to_string()); }
            q.fetch_one(p).await?
        });
        Ok(n)
    }
}

pub(crate) fn rand_bits() -> u64 {
    // MRNs need to be unlikely to collide, not secret: the UUIDv7 random tail suffices.
    let u = uuid::Uuid::now_v7();
    let b = u.as_bytes();
    u64::from_be_bytes([0, 0, 0, b[11], b[12], b[13], b[14], b[15]])
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_terms_normalise_phones_but_not_dates() {
        assert_eq!(
            super::search_terms("(602) 555-0101"),
            vec!["602", "5550101"]
        );
        assert_eq!(
            super::search_terms("LOPEZ 1988-04-02"),
            vec!["lopez", "1988-04-02"]
        );
        assert_eq!(super::search_terms("50%_off"), vec!["50%_off"]);
    }
}
