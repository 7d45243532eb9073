//! `dynamic_config_parts`: validated plugin output, merged into the effective config.

use routerd_model::{gojson, Directive, DynamicConfigPart, Resource, Timestamp};
use rusqlite::{params, Row};

use crate::{null_if_empty, parse_time_text, time_text, Result, StateError, Store};

const COLUMNS: &str =
    "id, source, generation, observed_at, expires_at, digest, resources_json, directives_json,
                       status, error, created_at, updated_at";

struct RawPart {
    part: DynamicConfigPart,
    resources_json: Option<String>,
    directives_json: Option<String>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<RawPart> {
    Ok(RawPart {
        part: DynamicConfigPart {
            id: r.get(0)?,
            source: r.get(1)?,
            generation: r.get(2)?,
            observed_at: parse_time_text(r.get(3)?),
            expires_at: parse_time_text(r.get(4)?),
            digest: r.get(5)?,
            stored_status: r.get(8)?,
            error: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
            created_at: parse_time_text(r.get(10)?),
            updated_at: parse_time_text(r.get(11)?),
            ..Default::default()
        },
        resources_json: r.get(6)?,
        directives_json: r.get(7)?,
    })
}

/// `null`, SQL NULL and empty text all mean "none" (Go writes the first).
fn decode_list<T: serde::de::DeserializeOwned>(
    text: Option<&str>,
    what: &str,
    source: &str,
) -> Result<Vec<T>> {
    match text.map(str::trim) {
        None | Some("") | Some("null") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| StateError::Decode {
            what: format!("{what} of dynamic part source {source:?}"),
            message: e.to_string(),
        }),
    }
}

impl RawPart {
    fn decode(self) -> Result<DynamicConfigPart> {
        let mut part = self.part;
        part.resources = decode_list(self.resources_json.as_deref(), "resources", &part.source)?;
        part.directives = decode_list(self.directives_json.as_deref(), "directives", &part.source)?;
        Ok(part)
    }
}

fn list_json<T: serde::Serialize>(items: &[T]) -> String {
    if items.is_empty() {
        "null".into()
    } else {
        gojson::to_string(items).expect("resources always encode")
    }
}

impl Store {
    /// Inserts or replaces the part with the same (source, generation); `created_at` survives.
    pub fn upsert_part(&self, part: &DynamicConfigPart) -> Result<()> {
        let now = self.now();
        let or_now = |t: Timestamp| if t.is_zero() { now } else { t };
        self.conn.execute(
            "INSERT INTO dynamic_config_parts (source, generation, observed_at, expires_at, digest, resources_json,
                                               directives_json, status, error, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(source, generation) DO UPDATE SET
                 observed_at = excluded.observed_at, expires_at = excluded.expires_at, digest = excluded.digest,
                 resources_json = excluded.resources_json, directives_json = excluded.directives_json,
                 status = excluded.status, error = excluded.error, updated_at = excluded.updated_at",
            params![
                part.source,
                part.generation,
                time_text(or_now(part.observed_at)),
                time_text(part.expires_at),
                part.digest,
                list_json::<Resource>(&part.resources),
                list_json::<Directive>(&part.directives),
                if part.stored_status.is_empty() { "active" } else { &part.stored_status },
                null_if_empty(&part.error),
                time_text(or_now(part.created_at)),
                time_text(now),
            ],
        )?;
        Ok(())
    }

    /// Every part, newest first: observedAt, generation and id descending. Times are compared as
    /// instants, not as text (Go's text order misplaces `…:00.5Z` before `…:00Z`).
    pub fn list_parts(&self) -> Result<Vec<DynamicConfigPart>> {
        let mut parts =
            self.query_parts(&format!("SELECT {COLUMNS} FROM dynamic_config_parts"), [])?;
        parts.sort_by(|a, b| {
            (b.observed_at, b.generation, b.id).cmp(&(a.observed_at, a.generation, a.id))
        });
        Ok(parts)
    }

    /// Parts of one source: generation, observedAt and id descending.
    pub fn parts_by_source(&self, source: &str) -> Result<Vec<DynamicConfigPart>> {
        let mut parts = self.query_parts(
            &format!("SELECT {COLUMNS} FROM dynamic_config_parts WHERE source = ?1"),
            [source],
        )?;
        parts.sort_by(|a, b| {
            (b.generation, b.observed_at, b.id).cmp(&(a.generation, a.observed_at, a.id))
        });
        Ok(parts)
    }

    /// Deletes every generation of `source`; returns how many rows went.
    pub fn delete_parts(&self, source: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM dynamic_config_parts WHERE source = ?1",
            [source],
        )?)
    }

    /// Changes whenever a part is stored, updated or deleted: the apply loop compares it to
    /// decide whether the effective config may have changed (expiry is handled by time).
    pub fn parts_fingerprint(&self) -> Result<(i64, i64, String)> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(MAX(updated_at), '')
             FROM dynamic_config_parts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    }

    /// The highest stored generation of a source, 0 when there is none.
    pub fn max_generation(&self, source: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(generation), 0) FROM dynamic_config_parts WHERE source = ?1",
            [source],
            |r| r.get(0),
        )?)
    }

    fn query_parts<P: rusqlite::Params>(&self, sql: &str, p: P) -> Result<Vec<DynamicConfigPart>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let raw = stmt
            .query_map(p, from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raw.into_iter().map(RawPart::decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::store_at;
    use routerd_model::kinds::*;
    use routerd_model::{GoDuration, Spec};

    fn claim(name: &str) -> Resource {
        Resource::new(
            name,
            Spec::RemoteAddressClaim(RemoteAddressClaimSpec {
                domain_ref: "d".into(),
                address: "10.88.60.9/32".into(),
                owner_side: "onprem".into(),
                ..Default::default()
            }),
        )
    }

    fn part(source: &str, observed: Timestamp) -> DynamicConfigPart {
        DynamicConfigPart {
            source: source.into(),
            generation: 1,
            observed_at: observed,
            expires_at: observed.add(GoDuration::from_secs(1800)),
            digest: "d".into(),
            resources: vec![claim("onprem-10-88-60-9")],
            ..Default::default()
        }
    }

    #[test]
    fn upsert_replaces_by_source_and_generation() {
        let (_d, store, clock) = store_at(1_780_142_400);
        let t = Timestamp::from_unix(1_780_142_400);
        store
            .upsert_part(&part("EventSubscription/s/a", t))
            .unwrap();
        clock.advance(GoDuration::from_secs(5));
        let mut again = part("EventSubscription/s/a", t);
        again.digest = "e".into();
        store.upsert_part(&again).unwrap();
        let parts = store.list_parts().unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].digest, "e");
        assert_eq!(parts[0].created_at, t, "created_at survives an upsert");
        assert_eq!(parts[0].updated_at, t.add(GoDuration::from_secs(5)));
        assert_eq!(parts[0].resources, vec![claim("onprem-10-88-60-9")]);
        assert!(parts[0].directives.is_empty());
        assert_eq!(store.max_generation("EventSubscription/s/a").unwrap(), 1);
        assert_eq!(store.max_generation("nope").unwrap(), 0);
    }

    #[test]
    fn delete_removes_every_generation_of_one_source_only() {
        let (_d, store, _) = store_at(1_780_142_400);
        let t = Timestamp::from_unix(1_780_142_400);
        let mut second = part("Plugin/p", t);
        second.generation = 2;
        store.upsert_part(&part("Plugin/p", t)).unwrap();
        store.upsert_part(&second).unwrap();
        store.upsert_part(&part("Plugin/q", t)).unwrap();
        assert_eq!(store.delete_parts("Plugin/p").unwrap(), 2);
        assert_eq!(store.delete_parts("Plugin/p").unwrap(), 0);
        let left: Vec<_> = store
            .list_parts()
            .unwrap()
            .into_iter()
            .map(|p| p.source)
            .collect();
        assert_eq!(left, ["Plugin/q"]);
    }

    #[test]
    fn lists_newest_first_by_instant_not_text() {
        let (_d, store, _) = store_at(1_780_142_400);
        let whole = Timestamp::from_unix(1_780_142_400);
        let half = Timestamp::from_unix_nanos(1_780_142_400_500_000_000);
        store.upsert_part(&part("half", half)).unwrap();
        store.upsert_part(&part("whole", whole)).unwrap();
        let order: Vec<_> = store
            .list_parts()
            .unwrap()
            .into_iter()
            .map(|p| p.source)
            .collect();
        assert_eq!(order, ["half", "whole"]);
    }

    #[test]
    fn stores_go_compatible_json_and_reads_null_directives() {
        let (_d, store, _) = store_at(1_780_142_400);
        store
            .upsert_part(&part("s", Timestamp::from_unix(1_780_142_400)))
            .unwrap();
        let (res, dirs): (String, String) = store
            .conn
            .query_row(
                "SELECT resources_json, directives_json FROM dynamic_config_parts",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(dirs, "null");
        assert!(res.starts_with(r#"[{"apiVersion":"hybrid.routerd.net/v1alpha1","kind":"RemoteAddressClaim","metadata":{"name":"onprem-10-88-60-9"},"spec":{"domainRef":"d""#), "{res}");
    }

    #[test]
    fn an_unknown_kind_in_stored_json_is_a_decode_error_naming_the_source() {
        let (_d, store, _) = store_at(1_780_142_400);
        store
            .upsert_part(&part("s", Timestamp::from_unix(1_780_142_400)))
            .unwrap();
        store
            .conn
            .execute("UPDATE dynamic_config_parts SET resources_json = '[{\"apiVersion\":\"x/v1\",\"kind\":\"Gizmo\",\"metadata\":{\"name\":\"g\"}}]'", [])
            .unwrap();
        let err = store.list_parts().unwrap_err().to_string();
        assert!(
            err.contains("dynamic part source \"s\"")
                && err.contains("unsupported resource kind Gizmo"),
            "{err}"
        );
    }
}
