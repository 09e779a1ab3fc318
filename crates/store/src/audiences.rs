//! Audiences: the PledgeBox lists members are synced into. Names are unique per account.

use chrono::{DateTime, Utc};
use pledgesync_core::{AccountId, AudienceId};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::db::Store;
use crate::error::{constraint, StoreError};

/// One audience.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience {
    /// Its id; integrations map to it and members belong to it.
    pub id: AudienceId,
    /// The PledgeBox account that owns it; only that account's integrations may map it.
    pub account_id: AccountId,
    /// The name shown in PledgeBox, unique within the account.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Audience {
    fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let account: String = row.try_get("account_id")?;
        Ok(Audience {
            id: AudienceId(row.try_get("id")?),
            account_id: AccountId::parse(account)
                .map_err(|e| StoreError::corrupt(format!("audience account_id: {e}")))?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Store {
    /// Creates an audience. A second one with the same name in the account is
    /// [`StoreError::Conflict`].
    pub async fn create_audience(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Audience, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::Rejected(
                "an audience name must be 1 to 200 characters".into(),
            ));
        }
        let result = sqlx::query(
            "INSERT INTO audiences (id, account_id, name) VALUES ($1, $2, $3) \
             RETURNING id, account_id, name, created_at",
        )
        .bind(AudienceId::new().0)
        .bind(account.as_str())
        .bind(name)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => Audience::from_row(&row),
            Err(e) if constraint(&e) == Some("audiences_account_name_key") => {
                Err(StoreError::Conflict {
                    what: format!("an audience named {name:?} in this account"),
                    field: "name",
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One audience, or [`StoreError::NotFound`].
    pub async fn get_audience(&self, id: AudienceId) -> Result<Audience, StoreError> {
        let row =
            sqlx::query("SELECT id, account_id, name, created_at FROM audiences WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::not_found("audience", id))?;
        Audience::from_row(&row)
    }

    /// The account's audiences, by name.
    pub async fn list_audiences(&self, account: &AccountId) -> Result<Vec<Audience>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account_id, name, created_at FROM audiences WHERE account_id = $1 ORDER BY name, id",
        )
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Audience::from_row).collect()
    }
}
