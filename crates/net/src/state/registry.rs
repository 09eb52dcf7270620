//! The client registry (`clients.toml`): who may use the tunnel, with which
//! token (stored only as its salted hash) and which allow-list.

use std::path::Path;
use std::time::SystemTime;

use onedoor_proto::tunnel::{AllowList, AllowPattern, Token, TokenHash, TokenSalt};
use serde::Deserialize;
use toml::Spanned;

use super::{files, toml_file, whole_seconds, RegistryError, Stamp, StateDir, StateError};
use super::{CLIENTS_TOML, SERVER_TOML};

/// The longest client name.
const MAX_NAME: usize = 64;

/// One client. Holds no token: only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    /// Its unique name (`[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 bytes).
    pub name: String,
    /// The salted hash of its token.
    pub token_hash: TokenHash,
    /// What it may reach and bind; empty allows nothing.
    pub allow: AllowList,
    /// When it was added (whole seconds).
    pub created: SystemTime,
}

/// The clients of one server, in the order they were added.
///
/// Edits ([`Registry::add`], [`Registry::allow`], …) change memory only;
/// [`Registry::save`] (or [`StateDir::edit_registry`], which also locks)
/// writes them.
#[derive(Debug, Clone)]
pub struct Registry {
    salt: TokenSalt,
    clients: Vec<ClientEntry>,
    stamp: Option<Stamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClients {
    #[serde(default)]
    client: Vec<RawClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClient {
    name: Spanned<String>,
    token_hash: Spanned<String>,
    allow: Spanned<Vec<Spanned<String>>>,
    created: Spanned<toml::value::Datetime>,
}

/// Check a client name: 1-64 bytes of `A-Z a-z 0-9 . _ -`, starting with a
/// letter or digit (so it never looks like a flag).
pub fn check_client_name(name: &str) -> Result<(), RegistryError> {
    let bad = |why| RegistryError::BadName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME {
        return Err(bad("longer than 64 characters"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("must start with a letter or a digit"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

impl Registry {
    /// An empty registry whose hashes use `salt`.
    pub fn new(salt: TokenSalt) -> Registry {
        Registry {
            salt,
            clients: Vec::new(),
            stamp: None,
        }
    }

    /// Read and check `clients.toml` (a missing file is an empty registry).
    /// Remembers the [`Stamp`] of the version read.
    pub fn load(state: &StateDir) -> Result<Registry, StateError> {
        let path = state.file(CLIENTS_TOML);
        let Some((text, stamp)) = files::read(&path)? else {
            return Ok(Registry::new(state.server().salt));
        };
        files::warn_if_loose(&path, 0o077);
        let mut registry = Registry::parse(&path, &text, state.server().salt)?;
        registry.stamp = Some(stamp);
        Ok(registry)
    }

    /// Parse and check the text of a `clients.toml`; `path` names it in
    /// errors, which give `path:line`.
    pub fn parse(path: &Path, text: &str, salt: TokenSalt) -> Result<Registry, StateError> {
        let raw: RawClients = toml_file::parse(path, text)?;
        let bad = |at: usize, what: String| toml_file::invalid(path, text, at, what);
        let mut registry = Registry::new(salt);
        for c in raw.client {
            let name_at = c.name.span().start;
            let name = c.name.into_inner();
            check_client_name(&name).map_err(|e| bad(name_at, format!("`name`: {e}")))?;
            if registry.position_ignoring_case(&name).is_some() {
                return Err(bad(
                    name_at,
                    format!("`name`: a client named {name:?} comes earlier in the file"),
                ));
            }
            let token_hash = c.token_hash.get_ref().parse::<TokenHash>().map_err(|e| {
                bad(
                    c.token_hash.span().start,
                    format!("`token-hash`: {e} (the salted SHA-256 of the token)"),
                )
            })?;
            if token_hash
                .find_in(registry.clients.iter().map(|c| &c.token_hash))
                .is_some()
            {
                return Err(bad(
                    c.token_hash.span().start,
                    format!("`token-hash`: {name:?} has the same token as another client"),
                ));
            }
            let mut allow = AllowList::new();
            for p in c.allow.into_inner() {
                let pattern = p.get_ref().parse::<AllowPattern>().map_err(|e| {
                    bad(
                        p.span().start,
                        format!("`allow`: pattern {:?}: {e}", p.get_ref()),
                    )
                })?;
                allow.grant(pattern);
            }
            let created = toml_file::to_system_time(c.created.get_ref())
                .map_err(|what| bad(c.created.span().start, format!("`created`: {what}")))?;
            registry.clients.push(ClientEntry {
                name,
                token_hash,
                allow,
                created,
            });
        }
        Ok(registry)
    }

    /// The text of `clients.toml` for this registry; [`Registry::parse`]
    /// reads it back.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "# onedoor clients, managed with `onedoor client add|allow|deny|remove`.\n\
             # No token is stored here: token-hash is its salted SHA-256 (the salt\n\
             # is in {SERVER_TOML}). allow: patterns as `onedoor client allow` takes\n\
             # them; [] allows nothing. serve reads this file again when it changes.\n"
        );
        for c in &self.clients {
            let allow: Vec<String> = c
                .allow
                .patterns()
                .iter()
                .map(|p| toml_file::quote(&p.to_string()))
                .collect();
            out.push_str(&format!(
                "\n[[client]]\nname = {}\ntoken-hash = \"{}\"\nallow = [{}]\ncreated = {}\n",
                toml_file::quote(&c.name),
                c.token_hash,
                allow.join(", "),
                toml_file::datetime(c.created),
            ));
        }
        out
    }

    /// Write `clients.toml` atomically (0600) and remember its new stamp.
    /// Prefer [`StateDir::edit_registry`], which holds the writers' lock
    /// from load to save.
    pub fn save(&mut self, state: &StateDir) -> Result<(), StateError> {
        files::write_atomic(state.path(), CLIENTS_TOML, self.to_toml().as_bytes(), 0o600)?;
        self.stamp = state.clients_stamp()?;
        Ok(())
    }

    /// The [`Stamp`] of the file version this registry was loaded from or
    /// last saved to; `None` if it came from no file.
    pub fn stamp(&self) -> Option<Stamp> {
        self.stamp
    }

    /// The salt of the token hashes.
    pub fn salt(&self) -> &TokenSalt {
        &self.salt
    }

    /// Add a client with a new token of 256 bits from the OS CSPRNG, and
    /// return the token: the only time it exists outside the client.
    /// `allow` may be empty (the client then reaches nothing until granted).
    pub fn add(&mut self, name: &str, allow: AllowList) -> Result<Token, RegistryError> {
        check_client_name(name)?;
        self.refuse_duplicate(name)?;
        let token = Token::from_bytes(files::random().map_err(RegistryError::Random)?);
        self.insert(name, allow, &token, SystemTime::now())?;
        Ok(token)
    }

    /// Add a client whose token the caller made (tests, imports).
    pub fn insert(
        &mut self,
        name: &str,
        allow: AllowList,
        token: &Token,
        created: SystemTime,
    ) -> Result<(), RegistryError> {
        check_client_name(name)?;
        self.refuse_duplicate(name)?;
        self.clients.push(ClientEntry {
            name: name.to_owned(),
            token_hash: token.hash(&self.salt),
            allow,
            created: whole_seconds(created),
        });
        Ok(())
    }

    /// Remove a client and return it. Serve cuts its live sessions when it
    /// loads the registry without it.
    pub fn remove(&mut self, name: &str) -> Result<ClientEntry, RegistryError> {
        let i = self.position(name)?;
        Ok(self.clients.remove(i))
    }

    /// Grant `patterns` to a client; returns those it did not have yet.
    pub fn allow(
        &mut self,
        name: &str,
        patterns: &[AllowPattern],
    ) -> Result<Vec<AllowPattern>, RegistryError> {
        let i = self.position(name)?;
        let allow = &mut self.clients[i].allow;
        Ok(patterns
            .iter()
            .filter(|p| allow.grant((*p).clone()))
            .cloned()
            .collect())
    }

    /// Take `patterns` away from a client (exactly those patterns: others
    /// may still allow the same destinations); returns those it had.
    pub fn deny(
        &mut self,
        name: &str,
        patterns: &[AllowPattern],
    ) -> Result<Vec<AllowPattern>, RegistryError> {
        let i = self.position(name)?;
        let allow = &mut self.clients[i].allow;
        Ok(patterns
            .iter()
            .filter(|p| allow.revoke(p))
            .cloned()
            .collect())
    }

    /// Every client, in the order added.
    pub fn list(&self) -> &[ClientEntry] {
        &self.clients
    }

    /// The client named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&ClientEntry> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// No clients at all.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client holding `token`, if any. The token is hashed once and
    /// compared with every stored hash in constant time
    /// ([`TokenHash::find_in`]): the time taken depends on the number of
    /// clients only, not on which one (if any) matched or where the hashes
    /// differ.
    pub fn authenticate(&self, token: &Token) -> Option<&ClientEntry> {
        let hash = token.hash(&self.salt);
        hash.find_in(self.clients.iter().map(|c| &c.token_hash))
            .map(|i| &self.clients[i])
    }

    fn position(&self, name: &str) -> Result<usize, RegistryError> {
        self.clients
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| RegistryError::NoSuchClient(name.to_owned()))
    }

    fn position_ignoring_case(&self, name: &str) -> Option<usize> {
        self.clients
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn refuse_duplicate(&self, name: &str) -> Result<(), RegistryError> {
        match self.position_ignoring_case(name) {
            Some(i) => Err(RegistryError::Duplicate(self.clients[i].name.clone())),
            None => Ok(()),
        }
    }
}
