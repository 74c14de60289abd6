//! Organisations and clinics: address, time zone, opening hours, closures.

use domain::clinics::{ClinicSettings, DayHours};
use domain::ids::{ClinicId, ClosureId, OrgId};
use domain::DomainError;
use jiff::civil::Date;

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clinic {
    pub id: ClinicId,
    pub org_id: OrgId,
    pub slug: String,
    pub settings: ClinicSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub id: ClosureId,
    pub closed_on: Date,
    pub reason: String,
}

type ClinicRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

const CLINIC_COLUMNS: &str = "id, org_id, slug, name, address_line1, address_line2, city, region, \
     postal_code, country, phone, email, time_zone, video_link";

pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse().map_err(|_| {
        crate::StoreError::Db(sqlx::Error::Decode(
            format!("stored id is malformed: {s}").into(),
        ))
    })
}

impl Store {
    pub async fn create_org(&self, name: &str) -> Result<OrgId> {
        let id = OrgId::new();
        on_pool!(self.write(), p => {
            sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id.to_string()).bind(name).bind(self.now()).execute(p).await?;
        });
        Ok(id)
    }

    pub async fn org_name(&self, id: OrgId) -> Result<String> {
        let r: Option<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT name FROM organisations WHERE id = $1").bind(id.to_string()).fetch_optional(p).await?
        });
        r.map(|r| r.0).ok_or(DomainError::NotFound.into())
    }

    pub async fn create_clinic(&self, org: OrgId, s: &ClinicSettings) -> Result<ClinicId> {
        let id = ClinicId::new();
        let slug = domain::clinics::slugify(&s.name);
        let now = self.now();
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query(&format!("INSERT INTO clinics ({CLINIC_COLUMNS}, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)"))
                .bind(id.to_string()).bind(org.to_string()).bind(&slug).bind(&s.name)
                .bind(&s.address_line1).bind(&s.address_line2).bind(&s.city).bind(&s.region)
                .bind(&s.postal_code).bind(&s.country).bind(&s.phone).bind(&s.email)
                .bind(&s.time_zone).bind(&s.video_link).bind(now)
                .execute(&mut *tx).await?;
            for h in &s.hours {
                sqlx::query("INSERT INTO clinic_hours (clinic_id, weekday, opens_min, closes_min) VALUES ($1, $2, $3, $4)")
                    .bind(id.to_string()).bind(i32::from(h.weekday)).bind(h.opens_min).bind(h.closes_min)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "slug") => {
                Err(DomainError::field("name", "another clinic already has this name").into())
            }
            other => other.map(|_| id),
        }
    }

    /// Replaces a clinic's settings and hours, with its audit record, in one transaction.
    pub async fn update_clinic(
        &self,
        id: ClinicId,
        s: &ClinicSettings,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE clinics SET name = $2, address_line1 = $3, address_line2 = $4, \
                 city = $5, region = $6, postal_code = $7, country = $8, phone = $9, email = $10, \
                 time_zone = $11, video_link = $13, updated_at = $12 WHERE id = $1")
                .bind(id.to_string()).bind(&s.name).bind(&s.address_line1).bind(&s.address_line2)
                .bind(&s.city).bind(&s.region).bind(&s.postal_code).bind(&s.country).bind(&s.phone)
                .bind(&s.email).bind(&s.time_zone).bind(now).bind(&s.video_link)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            sqlx::query("DELETE FROM clinic_hours WHERE clinic_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
            for h in &s.hours {
                sqlx::query("INSERT INTO clinic_hours (clinic_id, weekday, opens_min, closes_min) VALUES ($1, $2, $3, $4)")
                    .bind(id.to_string()).bind(i32::from(h.weekday)).bind(h.opens_min).bind(h.closes_min)
                    .execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn clinic(&self, id: ClinicId) -> Result<Clinic> {
        let row: Option<ClinicRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {CLINIC_COLUMNS} FROM clinics WHERE id = $1"))
                .bind(id.to_string()).fetch_optional(p).await?
        });
        let row = row.ok_or(DomainError::NotFound)?;
        let hours = self.clinic_hours(id).await?;
        clinic_from_row(row, hours)
    }

    /// A clinic by its public slug (the address of its public pages).
    pub async fn clinic_by_slug(&self, slug: &str) -> Result<Option<Clinic>> {
        let row: Option<ClinicRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {CLINIC_COLUMNS} FROM clinics WHERE slug = $1"))
                .bind(slug).fetch_optional(p).await?
        });
        match row {
            Some(r) => {
                let hours = self.clinic_hours(parse_id(&r.0)?).await?;
                Ok(Some(clinic_from_row(r, hours)?))
            }
            None => Ok(None),
        }
    }

    pub async fn clinics_of_org(&self, org: OrgId) -> Result<Vec<Clinic>> {
        let rows: Vec<ClinicRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {CLINIC_COLUMNS} FROM clinics WHERE org_id = $1 ORDER BY name"))
                .bind(org.to_string()).fetch_all(p).await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: ClinicId = parse_id(&r.0)?;
            let hours = self.clinic_hours(id).await?;
            out.push(clinic_from_row(r, hours)?);
        }
        Ok(out)
    }

    async fn clinic_hours(&self, id: ClinicId) -> Result<Vec<DayHours>> {
        let rows: Vec<(i32, i32, i32)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT weekday, opens_min, closes_min FROM clinic_hours WHERE clinic_id = $1 ORDER BY weekday")
                .bind(id.to_string()).fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .map(|(w, o, c)| DayHours {
                weekday: w as i16,
                opens_min: o,
                closes_min: c,
            })
            .collect())
    }

    pub async fn add_closure(
        &self,
        clinic: ClinicId,
        on: Date,
        reason: &str,
        audit: NewAuditEvent,
    ) -> Result<ClosureId> {
        let id = ClosureId::new();
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO clinic_closures (id, clinic_id, closed_on, reason) VALUES ($1, $2, $3, $4)")
                .bind(id.to_string()).bind(clinic.to_string()).bind(on.to_string()).bind(reason)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e))
                if is_unique_violation(&e, "closed_on")
                    || is_unique_violation(&e, "clinic_closures") =>
            {
                Err(
                    DomainError::field("closed_on", "the clinic is already closed on this date")
                        .into(),
                )
            }
            other => other.map(|_| id),
        }
    }

    pub async fn remove_closure(
        &self,
        clinic: ClinicId,
        id: ClosureId,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM clinic_closures WHERE id = $1 AND clinic_id = $2")
                .bind(id.to_string()).bind(clinic.to_string()).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn closures(&self, clinic: ClinicId) -> Result<Vec<Closure>> {
        let rows: Vec<(String, String, String)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, closed_on, reason FROM clinic_closures WHERE clinic_id = $1 ORDER BY closed_on")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(id, d, reason)| {
                Ok(Closure {
                    id: parse_id(&id)?,
                    closed_on: parse_id(&d)?,
                    reason,
                })
            })
            .collect()
    }
}

fn clinic_from_row(r: ClinicRow, hours: Vec<DayHours>) -> Result<Clinic> {
    Ok(Clinic {
        id: parse_id(&r.0)?,
        org_id: parse_id(&r.1)?,
        slug: r.2,
        settings: ClinicSettings {
            name: r.3,
            address_line1: r.4,
            address_line2: r.5,
            city: r.6,
            region: r.7,
            postal_code: r.8,
            country: r.9,
            phone: r.10,
            email: r.11,
            time_zone: r.12,
            hours,
            video_link: r.13,
        },
    })
}

impl Store {
    /// The first organisation, for single-organisation tools (CLI).
    pub async fn any_org(&self) -> Result<Option<OrgId>> {
        let r: Option<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id FROM organisations ORDER BY created_at, id LIMIT 1").fetch_optional(p).await?
        });
        r.map(|r| parse_id(&r.0)).transpose()
    }
}
