//! Staff accounts, role grants, browser sessions and API tokens.
//! Passwords arrive here already hashed; secrets are stored only as hashes.

use domain::auth::{Principal, Role};
use domain::ids::{ClinicId, OrgId, TokenId, UserId};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::org::parse_id as parse_stored;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store};

#[derive(Debug, Clone)]
pub struct LoginCandidate {
    pub id: UserId,
    pub org_id: OrgId,
    pub display_name: String,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub disabled: bool,
    pub locked_until: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub username: String,
    pub display_name: String,
    pub csrf_token: String,
    pub last_seen_at: i64,
    pub grants: Vec<(ClinicId, Role)>,
    /// Set while the session is handed to a patient on a tablet.
    pub kiosk: Option<Kiosk>,
}

/// A session handed to a patient: the page (path prefix) it may show, and
/// the staff page to return to once it is taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kiosk {
    pub path: String,
    pub back_to: String,
}

impl Kiosk {
    /// Whether a request for `path` stays on the kiosk's page (or is the
    /// locked screen itself). Static files ask for no session at all.
    pub fn allows(&self, path: &str) -> bool {
        let page = self.path.split('?').next().unwrap_or("");
        path == page || path == "/kiosk" || path.starts_with("/kiosk/")
    }
}

impl SessionInfo {
    pub fn principal(&self) -> Principal {
        Principal::User {
            user_id: self.user_id,
            grants: self.grants.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub disabled: bool,
    pub totp: bool,
    pub grants: Vec<(ClinicId, Role)>,
    /// Marked as the organisation's medical director: a prescriber so
    /// marked approves protocol versions.
    pub medical_director: bool,
}

#[derive(Debug, Clone)]
pub struct TokenSummary {
    pub id: TokenId,
    pub name: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub clinic_id: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Who a bearer token acts as.
#[derive(Debug, Clone)]
pub enum TokenOwner {
    User(SessionInfo),
    Device {
        token_id: TokenId,
        clinic_id: ClinicId,
        org_id: OrgId,
    },
}

pub struct NewUser<'a> {
    pub org_id: OrgId,
    pub username: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: &'a str,
}

impl Store {
    pub async fn create_user(&self, u: &NewUser<'_>, audit: NewAuditEvent) -> Result<UserId> {
        let id = UserId::new();
        let now = self.now();
        let mut audit = audit;
        audit.object_type = Some("user".into());
        audit.object_id = Some(id.to_string());
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO users (id, org_id, username, display_name, email, password_hash, \
                 disabled, failed_logins, password_changed_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, FALSE, 0, $7, $7)")
                .bind(id.to_string()).bind(u.org_id.to_string()).bind(u.username).bind(u.display_name)
                .bind(u.email).bind(u.password_hash).bind(now)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "username") => {
                Err(DomainError::field("username", "is already taken").into())
            }
            other => other.map(|_| id),
        }
    }

    pub async fn user_id_by_username(&self, username: &str) -> Result<Option<UserId>> {
        let r: Option<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id FROM users WHERE username = $1").bind(username).fetch_optional(p).await?
        });
        r.map(|r| parse_stored(&r.0)).transpose()
    }

    pub async fn login_candidate(&self, username: &str) -> Result<Option<LoginCandidate>> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            bool,
            Option<i64>,
        );
        let r: Option<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, org_id, display_name, password_hash, totp_secret, disabled, locked_until \
                 FROM users WHERE username = $1")
                .bind(username).fetch_optional(p).await?
        });
        r.map(|r| {
            Ok(LoginCandidate {
                id: parse_stored(&r.0)?,
                org_id: parse_stored(&r.1)?,
                display_name: r.2,
                password_hash: r.3,
                totp_secret: r.4,
                disabled: r.5,
                locked_until: r.6,
            })
        })
        .transpose()
    }

    /// Counts a failed login; locks the account once `max` failures in a row
    /// are reached. The count and the lock are set in one statement.
    pub async fn record_login_failure(
        &self,
        user: UserId,
        max: i64,
        lock_micros: i64,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE users SET failed_logins = failed_logins + 1, \
                 locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END WHERE id = $1")
                .bind(user.to_string()).bind(max).bind(now + lock_micros)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Starts a session after a successful login, clearing the failure count.
    pub async fn create_session(
        &self,
        user: UserId,
        id_hash: &str,
        csrf: &str,
        absolute_expires_at: i64,
        source_ip: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(user.to_string()).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, absolute_expires_at, source_ip) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6)")
                .bind(id_hash).bind(user.to_string()).bind(csrf).bind(now).bind(absolute_expires_at).bind(source_ip)
                .execute(&mut *tx).await?;
            // Old expired sessions of this user go now, so the table stays small.
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND absolute_expires_at < $2")
                .bind(user.to_string()).bind(now).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live session for a cookie's hash, or `None` when it does not exist,
    /// has expired (idle or absolute) or its user is disabled.
    pub async fn session(
        &self,
        id_hash: &str,
        now: i64,
        idle_micros: i64,
    ) -> Result<Option<SessionInfo>> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            i64,
            Option<String>,
            Option<String>,
        );
        let r: Option<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT u.id, u.org_id, u.username, u.display_name, s.csrf_token, s.last_seen_at, \
                 s.kiosk_path, s.kiosk_return \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id_hash = $1 AND s.absolute_expires_at > $2 AND s.last_seen_at > $3 AND u.disabled = FALSE")
                .bind(id_hash).bind(now).bind(now - idle_micros).fetch_optional(p).await?
        });
        let Some(r) = r else { return Ok(None) };
        let user_id: UserId = parse_stored(&r.0)?;
        let grants = self.grants_of(user_id).await?;
        Ok(Some(SessionInfo {
            user_id,
            org_id: parse_stored(&r.1)?,
            username: r.2,
            display_name: r.3,
            csrf_token: r.4,
            last_seen_at: r.5,
            grants,
            kiosk: r.6.map(|path| Kiosk {
                path,
                back_to: r.7.unwrap_or_else(|| "/".into()),
            }),
        }))
    }

    /// Hands the session to a patient (`Some`): it shows only the kiosk's
    /// page until taken back (`None`).
    pub async fn set_kiosk(
        &self,
        id_hash: &str,
        kiosk: Option<&Kiosk>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE sessions SET kiosk_path = $2, kiosk_return = $3 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(kiosk.map(|k| k.path.as_str()))
                .bind(kiosk.map(|k| k.back_to.as_str()))
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        on_pool!(self.write(), p => {
            sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(id_hash).bind(now).execute(p).await?;
        });
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn grants_of(&self, user: UserId) -> Result<Vec<(ClinicId, Role)>> {
        let rows: Vec<(String, String)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT clinic_id, role FROM role_grants WHERE user_id = $1 ORDER BY clinic_id, role")
                .bind(user.to_string()).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(c, r)| {
                let role: Role = r.parse().map_err(|_| {
                    crate::StoreError::Db(sqlx::Error::Decode(
                        format!("unknown stored role {r}").into(),
                    ))
                })?;
                Ok((parse_stored(&c)?, role))
            })
            .collect()
    }

    /// Replaces the password and ends every session of the user.
    pub async fn set_password(&self, user: UserId, hash: &str, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO password_history (user_id, password_hash, replaced_at) SELECT id, password_hash, $2 FROM users WHERE id = $1")
                .bind(user.to_string()).bind(self.now()).execute(&mut *tx).await?;
            let n = sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = $3, failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(user.to_string()).bind(hash).bind(self.now()).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The hashes of the user's last `n` replaced passwords, newest first.
    pub async fn previous_password_hashes(&self, user: UserId, n: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY replaced_at DESC LIMIT $2")
                .bind(user.to_string()).bind(n).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn set_totp_secret(
        &self,
        user: UserId,
        secret: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE users SET totp_secret = $2 WHERE id = $1")
                .bind(user.to_string()).bind(secret).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn set_user_disabled(
        &self,
        user: UserId,
        disabled: bool,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
                .bind(user.to_string()).bind(disabled).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            if disabled {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await?;
                sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user.to_string()).bind(self.now()).execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Takes a two-step code's time step for `user`: true the first time,
    /// false for that step or an earlier one again (a replayed code).
    pub async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool> {
        let n = on_pool!(self.write(), p => {
            sqlx::query("UPDATE users SET totp_last_step = $2 WHERE id = $1 \
                 AND (totp_last_step IS NULL OR totp_last_step < $2)")
                .bind(user.to_string()).bind(step).execute(p).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// Marks (or unmarks) a user as the organisation's medical director.
    pub async fn set_medical_director(
        &self,
        user: UserId,
        on: bool,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE users SET medical_director = $2 WHERE id = $1")
                .bind(user.to_string()).bind(on).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn grant_role(
        &self,
        user: UserId,
        clinic: ClinicId,
        role: Role,
        by: Option<UserId>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM role_grants WHERE user_id = $1 AND clinic_id = $2 AND role = $3")
                .bind(user.to_string()).bind(clinic.to_string()).bind(role.as_str()).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                sqlx::query("INSERT INTO role_grants (user_id, clinic_id, role, granted_at, granted_by) VALUES ($1, $2, $3, $4, $5)")
                    .bind(user.to_string()).bind(clinic.to_string()).bind(role.as_str()).bind(self.now())
                    .bind(by.map(|b| b.to_string()))
                    .execute(&mut *tx).await?;
                append_in_tx!(tx, &[audit], self.now())?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn revoke_role(
        &self,
        user: UserId,
        clinic: ClinicId,
        role: Role,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM role_grants WHERE user_id = $1 AND clinic_id = $2 AND role = $3")
                .bind(user.to_string()).bind(clinic.to_string()).bind(role.as_str()).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                append_in_tx!(tx, &[audit], self.now())?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn users_of_org(&self, org: OrgId) -> Result<Vec<UserSummary>> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            bool,
            Option<String>,
            bool,
        );
        let rows: Vec<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, username, display_name, email, disabled, totp_secret, medical_director FROM users WHERE org_id = $1 ORDER BY display_name")
                .bind(org.to_string()).fetch_all(p).await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: UserId = parse_stored(&r.0)?;
            out.push(UserSummary {
                id,
                username: r.1,
                display_name: r.2,
                email: r.3,
                disabled: r.4,
                totp: r.5.is_some(),
                grants: self.grants_of(id).await?,
                medical_director: r.6,
            });
        }
        Ok(out)
    }

    pub async fn user_summary(&self, user: UserId) -> Result<UserSummary> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            bool,
            Option<String>,
            bool,
        );
        let r: Option<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, username, display_name, email, disabled, totp_secret, medical_director FROM users WHERE id = $1")
                .bind(user.to_string()).fetch_optional(p).await?
        });
        let r = r.ok_or(DomainError::NotFound)?;
        Ok(UserSummary {
            id: user,
            username: r.1,
            display_name: r.2,
            email: r.3,
            disabled: r.4,
            totp: r.5.is_some(),
            grants: self.grants_of(user).await?,
            medical_director: r.6,
        })
    }

    pub async fn user_org(&self, user: UserId) -> Result<OrgId> {
        let r: Option<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT org_id FROM users WHERE id = $1").bind(user.to_string()).fetch_optional(p).await?
        });
        parse_stored(&r.ok_or(DomainError::NotFound)?.0)
    }

    /// Stores a new token (only its hash). `user` for a user token, `clinic` for a device.
    pub async fn create_token(
        &self,
        name: &str,
        user: Option<UserId>,
        clinic: Option<ClinicId>,
        hash: &str,
        by: Option<UserId>,
        audit: NewAuditEvent,
    ) -> Result<TokenId> {
        let id = TokenId::new();
        let kind = if user.is_some() { "user" } else { "device" };
        let mut audit = audit;
        audit.object_type = Some("api_token".into());
        audit.object_id = Some(id.to_string());
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO api_tokens (id, token_hash, name, kind, user_id, clinic_id, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(id.to_string()).bind(hash).bind(name).bind(kind)
                .bind(user.map(|u| u.to_string())).bind(clinic.map(|c| c.to_string()))
                .bind(self.now()).bind(by.map(|b| b.to_string()))
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(id)
    }

    pub async fn revoke_token(&self, id: TokenId, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_string()).bind(self.now()).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::NotFound.into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn tokens(&self) -> Result<Vec<TokenSummary>> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, name, kind, user_id, clinic_id, created_at, revoked_at FROM api_tokens ORDER BY created_at")
                .fetch_all(p).await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(TokenSummary {
                    id: parse_stored(&r.0)?,
                    name: r.1,
                    kind: r.2,
                    user_id: r.3,
                    clinic_id: r.4,
                    created_at: r.5,
                    revoked_at: r.6,
                })
            })
            .collect()
    }

    /// Who a live token's hash acts as.
    pub async fn token_owner(&self, hash: &str) -> Result<Option<TokenOwner>> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<bool>,
            Option<i64>,
        );
        let r: Option<Row> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT t.id, t.kind, t.user_id, t.clinic_id, u.username, u.display_name, \
                 COALESCE(u.org_id, c.org_id), u.disabled, u.locked_until \
                 FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN clinics c ON c.id = t.clinic_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL")
                .bind(hash).fetch_optional(p).await?
        });
        let Some(r) = r else { return Ok(None) };
        let org_id: OrgId = match &r.6 {
            Some(o) => parse_stored(o)?,
            None => return Ok(None),
        };
        if r.1 == "device" {
            let Some(c) = &r.3 else { return Ok(None) };
            return Ok(Some(TokenOwner::Device {
                token_id: parse_stored(&r.0)?,
                clinic_id: parse_stored(c)?,
                org_id,
            }));
        }
        // A disabled or locked account's tokens stop with it.
        if r.8.is_some_and(|until| until > self.now()) {
            return Ok(None);
        }
        let (Some(uid), Some(username), Some(display_name), Some(false)) = (r.2, r.4, r.5, r.7)
        else {
            return Ok(None);
        };
        let user_id: UserId = parse_stored(&uid)?;
        Ok(Some(TokenOwner::User(SessionInfo {
            user_id,
            org_id,
            username,
            display_name,
            csrf_token: String::new(),
            last_seen_at: 0,
            grants: self.grants_of(user_id).await?,
            kiosk: None,
        })))
    }
}
