//! Per-client limits at accept: concurrent connections, and concurrent
//! connections that have not logged in yet, per client (IPv4 address, IPv6
//! /64). Each counter is checked and incremented in one step under its map
//! entry's lock, never read and then added to, so two connections cannot
//! both take the last place.
//!
//! The maps hold only clients with a connection open, so they are bounded by
//! `limits.max_connections`.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::net::client_ip::{ClientGroup, Network, is_trusted};

/// Which per-client limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ConnectionsPerIp,
    PreloginPerIp,
}

impl Refusal {
    /// Label of `pec_proxy_connections_refused_total{limit}`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ConnectionsPerIp => "connections_per_ip",
            Refusal::PreloginPerIp => "prelogin_per_ip",
        }
    }
}

/// Open counts per client.
#[derive(Debug)]
pub struct ClientLimits {
    max_connections: usize,
    max_prelogin: usize,
    trusted: Vec<Network>,
    connections: DashMap<ClientGroup, usize>,
    prelogin: DashMap<ClientGroup, usize>,
}

impl ClientLimits {
    pub fn new(max_connections: usize, max_prelogin: usize, trusted: Vec<Network>) -> Arc<Self> {
        Arc::new(Self {
            max_connections,
            max_prelogin,
            trusted,
            connections: DashMap::new(),
            prelogin: DashMap::new(),
        })
    }

    /// Takes a connection place and a pre-login place for `ip`, or says
    /// which limit is reached. Trusted networks are not counted.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        if is_trusted(&self.trusted, ip) {
            return Ok(Admission::unlimited());
        }
        let group = ClientGroup::of(ip);
        let connection = Slot::take(self, Kind::Connection, group).ok_or(Refusal::ConnectionsPerIp)?;
        let prelogin = Slot::take(self, Kind::Prelogin, group).ok_or(Refusal::PreloginPerIp)?;
        Ok(Admission {
            _connection: Some(connection),
            prelogin: Some(prelogin),
        })
    }

    /// Open (connections, pre-login sessions) of `ip`'s client.
    #[cfg(test)]
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let g = ClientGroup::of(ip);
        (
            self.connections.get(&g).map_or(0, |v| *v),
            self.prelogin.get(&g).map_or(0, |v| *v),
        )
    }

    /// Clients with something open (bounded by the global connection limit).
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.connections.len()
    }

    fn map(&self, kind: Kind) -> (&DashMap<ClientGroup, usize>, usize) {
        match kind {
            Kind::Connection => (&self.connections, self.max_connections),
            Kind::Prelogin => (&self.prelogin, self.max_prelogin),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Connection,
    Prelogin,
}

/// One place taken in a per-client counter; given back on drop.
#[derive(Debug)]
struct Slot {
    limits: Arc<ClientLimits>,
    kind: Kind,
    group: ClientGroup,
}

impl Slot {
    fn take(limits: &Arc<ClientLimits>, kind: Kind, group: ClientGroup) -> Option<Slot> {
        let (map, max) = limits.map(kind);
        let mut count = map.entry(group).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            limits: limits.clone(),
            kind,
            group,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (map, _) = self.limits.map(self.kind);
        let empty = map.get_mut(&self.group).is_some_and(|mut count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
        if empty {
            map.remove_if(&self.group, |_, count| *count == 0);
        }
    }
}

/// A connection's places in the per-client counters. Hold it for the whole
/// session; call [`Admission::logged_in`] when the client has logged in.
#[derive(Debug)]
pub struct Admission {
    /// Held for its `Drop`, which gives the place back.
    _connection: Option<Slot>,
    prelogin: Option<Slot>,
}

impl Admission {
    /// Not counted (trusted networks, tests).
    pub fn unlimited() -> Self {
        Self {
            _connection: None,
            prelogin: None,
        }
    }

    /// The client logged in: its pre-login place is free for another.
    pub fn logged_in(&mut self) {
        self.prelogin = None;
    }
}

#[cfg(test)]
mod tests;
