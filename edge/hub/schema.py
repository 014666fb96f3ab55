"""The hub's PostgreSQL tables: the site's truth.

    sites      one row per site; ``last_seq`` is the site's change counter. Every change
               takes this row's lock (UPDATE ... RETURNING), so sequence numbers are
               gap-free and commit in order: a kiosk that has applied N can ask for
               "after N" and can never miss a change that commits later with a lower number.
    people     who is enrolled where (name unique per site), the embedding model
    templates  AES-GCM ciphertext under the site key (edge.fleet.sitekey); never plain
    changes    the change feed: (site, seq) -> add/remove with the sealed templates. When a
               person is removed, their earlier 'add' bodies are erased (redacted), so the
               feed keeps no name or template of someone who left
    devices    kiosks: site, broker password (Mosquitto hash), public wrap key, the site key
               wrapped for it, revoked_at
    admins     hub accounts: salted scrypt hash, failed tries, locked_until
    audit      who did what, when (admins, devices, conflicts, refused logins)
    events     decision events from kiosks, unique by the kiosk's event id (de-duplication)
"""
from __future__ import annotations

SCHEMA_VERSION = 1

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS hub_meta (key text PRIMARY KEY, value text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sites (
        name text PRIMARY KEY,
        last_seq bigint NOT NULL DEFAULT 0,
        key_check text NOT NULL,
        offline_policy text NOT NULL DEFAULT 'keep' CHECK (offline_policy IN ('keep', 'lock')),
        max_silence_s integer NOT NULL DEFAULT 3600 CHECK (max_silence_s > 0),
        created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS people (
        uid text PRIMARY KEY,
        site text NOT NULL REFERENCES sites(name),
        name text NOT NULL,
        model text NOT NULL,
        dim integer NOT NULL CHECK (dim > 0),
        origin text NOT NULL,
        enrolled_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (site, name))""",
    """CREATE TABLE IF NOT EXISTS templates (
        uid text PRIMARY KEY,
        person text NOT NULL REFERENCES people(uid) ON DELETE CASCADE,
        nonce text NOT NULL,
        ciphertext text NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS templates_by_person ON templates(person)""",
    """CREATE TABLE IF NOT EXISTS changes (
        site text NOT NULL REFERENCES sites(name),
        seq bigint NOT NULL,
        kind text NOT NULL CHECK (kind IN ('add', 'remove')),
        person text NOT NULL,
        body jsonb,
        committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (site, seq))""",
    """CREATE INDEX IF NOT EXISTS changes_by_person ON changes(site, person)""",
    """CREATE TABLE IF NOT EXISTS devices (
        name text PRIMARY KEY,
        site text NOT NULL REFERENCES sites(name),
        password_line text NOT NULL,
        wrap_public bytea NOT NULL,
        wrapped_key bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        last_seen timestamptz,
        status text)""",
    """CREATE TABLE IF NOT EXISTS admins (
        name text PRIMARY KEY,
        salt bytea NOT NULL,
        hash bytea NOT NULL,
        params jsonb NOT NULL,
        failures integer NOT NULL DEFAULT 0,
        locked_until timestamptz,
        created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS audit (
        id bigserial PRIMARY KEY,
        time timestamptz NOT NULL DEFAULT clock_timestamp(),
        actor text NOT NULL,
        action text NOT NULL,
        subject text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}')""",
    """CREATE TABLE IF NOT EXISTS events (
        id text PRIMARY KEY,
        site text NOT NULL,
        device text NOT NULL,
        time text,
        person text,
        unlock boolean,
        body jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
    """CREATE INDEX IF NOT EXISTS events_by_device ON events(device, received_at)""",
)
