//! Permissions, roles, and their links to keys (and of roles to permissions).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::{like_pattern, placeholders, SqlStore, Tx, FIRST};
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, KeyRow, Permission, RbacChange, Role, SetChange};
use crate::store::{RbacStore, StoreResult};

const PERMISSION_COLUMNS: &str =
    "p.id, p.workspace_id, p.name, p.slug, p.description, p.created_at_m";
const ROLE_COLUMNS: &str = "r.id, r.workspace_id, r.name, r.description, r.created_at_m";

fn permission_from(row: &AnyRow) -> StoreResult<Permission> {
    Ok(Permission {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at_m")?,
    })
}

fn role_from(row: &AnyRow) -> StoreResult<Role> {
    Ok(Role {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at_m")?,
        permissions: Vec::new(),
    })
}

/// A table linking owners (keys, roles) to members (permissions, roles).
struct LinkTable {
    table: &'static str,
    owner: &'static str,
    member: &'static str,
}

const KEY_PERMISSIONS: LinkTable = LinkTable {
    table: "keys_permissions",
    owner: "key_id",
    member: "permission_id",
};
const KEY_ROLES: LinkTable = LinkTable {
    table: "keys_roles",
    owner: "key_id",
    member: "role_id",
};
const ROLE_PERMISSIONS: LinkTable = LinkTable {
    table: "roles_permissions",
    owner: "role_id",
    member: "permission_id",
};

impl SqlStore {
    /// Fills `permissions` and `roles` of key rows (two queries for any number of rows).
    pub(super) async fn attach_rbac(
        conn: &mut AnyConnection,
        rows: &mut [KeyRow],
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let list = placeholders(1, ids.len());
        let sql = format!(
            "SELECT kp.key_id AS key_id, p.slug AS slug FROM keys_permissions kp \
             JOIN permissions p ON p.id = kp.permission_id WHERE kp.key_id IN ({list}) \
             UNION SELECT kr.key_id AS key_id, p.slug AS slug FROM keys_roles kr \
             JOIN roles_permissions rp ON rp.role_id = kr.role_id \
             JOIN permissions p ON p.id = rp.permission_id WHERE kr.key_id IN ({list})"
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let mut permissions: HashMap<String, BTreeSet<String>> = HashMap::new();
        for row in query.fetch_all(&mut *conn).await? {
            permissions
                .entry(row.try_get("key_id")?)
                .or_default()
                .insert(row.try_get("slug")?);
        }
        let sql = format!(
            "SELECT kr.key_id AS key_id, r.name AS name FROM keys_roles kr \
             JOIN roles r ON r.id = kr.role_id WHERE kr.key_id IN ({list})"
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let mut roles: HashMap<String, BTreeSet<String>> = HashMap::new();
        for row in query.fetch_all(&mut *conn).await? {
            roles
                .entry(row.try_get("key_id")?)
                .or_default()
                .insert(row.try_get("name")?);
        }
        for row in rows.iter_mut() {
            row.permissions = permissions
                .remove(&row.id)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            row.roles = roles
                .remove(&row.id)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
        }
        Ok(())
    }

    /// Inserts permissions unless their slug exists already.
    pub(super) async fn create_permissions_in(
        tx: &mut Tx,
        permissions: &[Permission],
    ) -> StoreResult<()> {
        for p in permissions {
            sqlx::query(
                "INSERT INTO permissions (id, workspace_id, name, slug, description, created_at_m) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&p.id)
            .bind(&p.workspace_id)
            .bind(&p.name)
            .bind(&p.slug)
            .bind(&p.description)
            .bind(p.created_at)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Inserts roles (without permissions); one whose name is taken by then is skipped.
    pub(super) async fn create_roles_in(tx: &mut Tx, roles: &[Role]) -> StoreResult<()> {
        for r in roles {
            sqlx::query(
                "INSERT INTO roles (id, workspace_id, name, description, created_at_m) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&r.id)
            .bind(&r.workspace_id)
            .bind(&r.name)
            .bind(&r.description)
            .bind(r.created_at)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// The ids of permissions with these slugs in the workspace.
    async fn permission_ids_in(
        tx: &mut Tx,
        workspace_id: &str,
        slugs: &[String],
    ) -> StoreResult<Vec<String>> {
        if slugs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id FROM permissions WHERE workspace_id = $1 AND lower(slug) IN ({})",
            placeholders(2, slugs.len())
        );
        let mut query = sqlx::query(&sql).bind(workspace_id);
        for slug in slugs {
            query = query.bind(slug.to_lowercase());
        }
        let rows = query.fetch_all(&mut **tx).await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Applies a set change to one of the link tables.
    async fn change_links(
        tx: &mut Tx,
        links: &LinkTable,
        owner: &str,
        workspace_id: &str,
        change: SetChange<String>,
        now: i64,
    ) -> StoreResult<()> {
        let LinkTable {
            table,
            owner: owner_col,
            member: member_col,
        } = links;
        let (clear_all, remove, add) = match change {
            SetChange::Add(ids) => (false, Vec::new(), ids),
            SetChange::Remove(ids) => (false, ids, Vec::new()),
            SetChange::Set(ids) => (true, Vec::new(), ids),
        };
        if clear_all {
            sqlx::query(&format!("DELETE FROM {table} WHERE {owner_col} = $1"))
                .bind(owner)
                .execute(&mut **tx)
                .await?;
        }
        for id in remove {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE {owner_col} = $1 AND {member_col} = $2"
            ))
            .bind(owner)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        for id in add {
            sqlx::query(&format!(
                "INSERT INTO {table} ({owner_col}, {member_col}, workspace_id, created_at_m) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
            ))
            .bind(owner)
            .bind(id)
            .bind(workspace_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Applies a key's RBAC change inside a transaction.
    pub(super) async fn change_key_rbac_in(
        tx: &mut Tx,
        key_id: &str,
        workspace_id: &str,
        change: &RbacChange,
        now: i64,
    ) -> StoreResult<()> {
        Self::create_permissions_in(tx, &change.create).await?;
        if let Some(permissions) = &change.permissions {
            let by_id = match permissions {
                SetChange::Add(s) => {
                    SetChange::Add(Self::permission_ids_in(tx, workspace_id, s).await?)
                }
                SetChange::Remove(s) => {
                    SetChange::Remove(Self::permission_ids_in(tx, workspace_id, s).await?)
                }
                SetChange::Set(s) => {
                    SetChange::Set(Self::permission_ids_in(tx, workspace_id, s).await?)
                }
            };
            Self::change_links(tx, &KEY_PERMISSIONS, key_id, workspace_id, by_id, now).await?;
        }
        if let Some(roles) = &change.roles {
            Self::change_links(tx, &KEY_ROLES, key_id, workspace_id, roles.clone(), now).await?;
        }
        Ok(())
    }

    async fn permissions_of_roles(&self, roles: &mut [Role]) -> StoreResult<()> {
        if roles.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT rp.role_id AS role_id, {PERMISSION_COLUMNS} FROM roles_permissions rp \
             JOIN permissions p ON p.id = rp.permission_id WHERE rp.role_id IN ({}) ORDER BY p.slug",
            placeholders(1, roles.len())
        );
        let mut query = sqlx::query(&sql);
        for role in roles.iter() {
            query = query.bind(&role.id);
        }
        let mut by_role: HashMap<String, Vec<Permission>> = HashMap::new();
        for row in query.fetch_all(&self.reader).await? {
            by_role
                .entry(row.try_get("role_id")?)
                .or_default()
                .push(permission_from(&row)?);
        }
        for role in roles.iter_mut() {
            role.permissions = by_role.remove(&role.id).unwrap_or_default();
        }
        Ok(())
    }
}

#[async_trait]
impl RbacStore for SqlStore {
    async fn create_permission(&self, p: &Permission, audit: &[AuditEvent]) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO permissions (id, workspace_id, name, slug, description, created_at_m) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.workspace_id)
        .bind(&p.name)
        .bind(&p.slug)
        .bind(&p.description)
        .bind(p.created_at)
        .execute(&mut *tx)
        .await?;
        Self::finish(tx, done.rows_affected(), None, audit).await
    }

    async fn find_permission(
        &self,
        workspace_id: &str,
        id_or_slug: &str,
    ) -> StoreResult<Option<Permission>> {
        let sql = format!(
            "SELECT {PERMISSION_COLUMNS} FROM permissions p WHERE p.workspace_id = $1 \
             AND (p.id = $2 OR lower(p.slug) = lower($2)) ORDER BY CASE WHEN p.id = $2 THEN 0 ELSE 1 END LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(id_or_slug)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(permission_from).transpose()
    }

    async fn find_permissions_by_slug(
        &self,
        workspace_id: &str,
        slugs: &[String],
    ) -> StoreResult<Vec<Permission>> {
        if slugs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {PERMISSION_COLUMNS} FROM permissions p WHERE p.workspace_id = $1 AND lower(p.slug) IN ({}) \
             ORDER BY p.slug",
            placeholders(2, slugs.len())
        );
        let mut query = sqlx::query(&sql).bind(workspace_id);
        for slug in slugs {
            query = query.bind(slug.to_lowercase());
        }
        query
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(permission_from)
            .collect()
    }

    async fn list_permissions(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Permission>> {
        let sql = format!(
            "SELECT {PERMISSION_COLUMNS} FROM permissions p WHERE p.workspace_id = $1 \
             AND p.id >= $2 \
             AND ($3 IS NULL OR lower(p.id) LIKE $3 ESCAPE '\\' OR lower(p.name) LIKE $3 ESCAPE '\\' \
                  OR lower(p.slug) LIKE $3 ESCAPE '\\' OR lower(COALESCE(p.description, '')) LIKE $3 ESCAPE '\\') \
             ORDER BY p.id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(cursor.unwrap_or(FIRST))
            .bind(search.map(like_pattern))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(permission_from).collect()
    }

    async fn delete_permission(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        for table in ["keys_permissions", "roles_permissions"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE permission_id = $1 AND workspace_id = $2"
            ))
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM permissions WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        Self::finish(
            tx,
            done.rows_affected(),
            Some((ChangeKind::Rbac, workspace_id, now)),
            audit,
        )
        .await
    }

    async fn create_role(
        &self,
        role: &Role,
        change: &RbacChange,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO roles (id, workspace_id, name, description, created_at_m) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&role.id)
        .bind(&role.workspace_id)
        .bind(&role.name)
        .bind(&role.description)
        .bind(role.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::create_permissions_in(&mut tx, &change.create).await?;
        if let Some(SetChange::Set(slugs) | SetChange::Add(slugs)) = &change.permissions {
            let ids = Self::permission_ids_in(&mut tx, &role.workspace_id, slugs).await?;
            Self::change_links(
                &mut tx,
                &ROLE_PERMISSIONS,
                &role.id,
                &role.workspace_id,
                SetChange::Add(ids),
                role.created_at,
            )
            .await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_role(&self, workspace_id: &str, id_or_name: &str) -> StoreResult<Option<Role>> {
        let sql = format!(
            "SELECT {ROLE_COLUMNS} FROM roles r WHERE r.workspace_id = $1 \
             AND (r.id = $2 OR lower(r.name) = lower($2)) ORDER BY CASE WHEN r.id = $2 THEN 0 ELSE 1 END LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(id_or_name)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut roles = vec![role_from(&row)?];
        self.permissions_of_roles(&mut roles).await?;
        Ok(roles.pop())
    }

    async fn find_roles_by_name(
        &self,
        workspace_id: &str,
        names: &[String],
    ) -> StoreResult<Vec<Role>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {ROLE_COLUMNS} FROM roles r WHERE r.workspace_id = $1 AND lower(r.name) IN ({}) ORDER BY r.name",
            placeholders(2, names.len())
        );
        let mut query = sqlx::query(&sql).bind(workspace_id);
        for name in names {
            query = query.bind(name.to_lowercase());
        }
        let mut roles = query
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(role_from)
            .collect::<StoreResult<Vec<_>>>()?;
        self.permissions_of_roles(&mut roles).await?;
        Ok(roles)
    }

    async fn list_roles(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Role>> {
        let sql = format!(
            "SELECT {ROLE_COLUMNS} FROM roles r WHERE r.workspace_id = $1 AND r.id >= $2 \
             AND ($3 IS NULL OR lower(r.id) LIKE $3 ESCAPE '\\' OR lower(r.name) LIKE $3 ESCAPE '\\' \
                  OR lower(COALESCE(r.description, '')) LIKE $3 ESCAPE '\\') \
             ORDER BY r.id LIMIT $4"
        );
        let mut roles = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(cursor.unwrap_or(FIRST))
            .bind(search.map(like_pattern))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(role_from)
            .collect::<StoreResult<Vec<_>>>()?;
        self.permissions_of_roles(&mut roles).await?;
        Ok(roles)
    }

    async fn delete_role(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        for table in ["keys_roles", "roles_permissions"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE role_id = $1 AND workspace_id = $2"
            ))
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM roles WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        Self::finish(
            tx,
            done.rows_affected(),
            Some((ChangeKind::Rbac, workspace_id, now)),
            audit,
        )
        .await
    }

    async fn set_role_permissions(
        &self,
        workspace_id: &str,
        role_id: &str,
        change: &RbacChange,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<Option<Vec<Permission>>> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT id FROM roles WHERE id = $1 AND workspace_id = $2{}",
            self.dialect.for_update
        );
        if sqlx::query(&sql)
            .bind(role_id)
            .bind(workspace_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Ok(None);
        }
        Self::create_permissions_in(&mut tx, &change.create).await?;
        let slugs = match &change.permissions {
            Some(SetChange::Set(s) | SetChange::Add(s) | SetChange::Remove(s)) => s.clone(),
            None => Vec::new(),
        };
        let ids = Self::permission_ids_in(&mut tx, workspace_id, &slugs).await?;
        Self::change_links(
            &mut tx,
            &ROLE_PERMISSIONS,
            role_id,
            workspace_id,
            SetChange::Set(ids),
            now,
        )
        .await?;
        Self::insert_change(&mut tx, ChangeKind::Rbac, workspace_id, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        let mut roles = vec![Role {
            id: role_id.to_string(),
            workspace_id: workspace_id.to_string(),
            name: String::new(),
            description: None,
            created_at: 0,
            permissions: Vec::new(),
        }];
        self.permissions_of_roles(&mut roles).await?;
        Ok(roles.pop().map(|r| r.permissions))
    }

    async fn change_key_rbac(
        &self,
        key_id: &str,
        change: &RbacChange,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<Option<()>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT hash, workspace_id FROM keys WHERE id = $1 AND deleted_at_m IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let hash: String = row.try_get("hash")?;
        let workspace_id: String = row.try_get("workspace_id")?;
        Self::change_key_rbac_in(&mut tx, key_id, &workspace_id, change, now).await?;
        sqlx::query("UPDATE keys SET updated_at_m = $1 WHERE id = $2")
            .bind(now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        Self::insert_change(&mut tx, ChangeKind::Key, &hash, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(()))
    }

    async fn key_permissions(&self, key_id: &str) -> StoreResult<Vec<Permission>> {
        let sql = format!(
            "SELECT {PERMISSION_COLUMNS} FROM keys_permissions kp JOIN permissions p ON p.id = kp.permission_id \
             WHERE kp.key_id = $1 ORDER BY p.slug"
        );
        sqlx::query(&sql)
            .bind(key_id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(permission_from)
            .collect()
    }

    async fn key_roles(&self, key_id: &str) -> StoreResult<Vec<Role>> {
        let sql = format!(
            "SELECT {ROLE_COLUMNS} FROM keys_roles kr JOIN roles r ON r.id = kr.role_id WHERE kr.key_id = $1 ORDER BY r.name"
        );
        let mut roles = sqlx::query(&sql)
            .bind(key_id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(role_from)
            .collect::<StoreResult<Vec<_>>>()?;
        self.permissions_of_roles(&mut roles).await?;
        Ok(roles)
    }
}
