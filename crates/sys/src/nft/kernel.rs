//! Sending batches over `NETLINK_NETFILTER`, in the network namespace of
//! the thread that opens the socket.

use std::io;

use super::encode::list_tables_request;
use super::{parse_table_info, Batch, EncodedBatch, Family, Table, TableInfo};
use crate::nl::{Netlink, NlError};

/// A netfilter netlink socket for nf_tables batches.
///
/// Keep it open for as long as a table made with
/// [`super::TABLE_F_OWNER`] should live: only this socket may change that
/// table, and the kernel deletes it when the socket closes.
pub struct NftSocket {
    nl: Netlink,
    next_seq: u32,
}

impl std::fmt::Debug for NftSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftSocket").finish_non_exhaustive()
    }
}

impl NftSocket {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> Result<NftSocket, NlError> {
        let nl = Netlink::open(netlink_sys::protocols::NETLINK_NETFILTER).map_err(|e| NlError {
            what: "opening a netfilter netlink socket".into(),
            source: e,
        })?;
        Ok(NftSocket { nl, next_seq: 1 })
    }

    /// Build a batch with `build`, send it, and wait until the kernel has
    /// applied every message (or none: the first error is returned, named
    /// after the message that caused it).
    pub fn send(&mut self, build: impl FnOnce(&mut Batch)) -> Result<(), NlError> {
        let mut batch = Batch::new(self.next_seq);
        build(&mut batch);
        let batch = batch.finish();
        self.next_seq = batch.next_seq;
        self.send_encoded(&batch)
    }

    fn send_encoded(&mut self, batch: &EncodedBatch) -> Result<(), NlError> {
        self.nl
            .reserve_send(batch.bytes.len())
            .map_err(|e| NlError {
                what: format!("making room for a batch of {} bytes", batch.bytes.len()),
                source: e,
            })?;
        let acks: Vec<u32> = batch.msgs.iter().map(|m| m.seq).collect();
        self.nl
            .transact(&batch.bytes, &acks, &|seq| batch.describe(seq))
    }

    /// Create `table` with everything in it, atomically.
    pub fn add_table(&mut self, table: &Table) -> Result<(), NlError> {
        self.send(|b| b.add_table(table))
    }

    /// Delete the table `name` of `family`.
    pub fn delete_table(&mut self, family: Family, name: &str) -> Result<(), NlError> {
        self.send(|b| b.delete_table(family, name))
    }

    /// The tables of `family` (`None`: of every family) in this namespace.
    pub fn list_tables(&mut self, family: Option<Family>) -> Result<Vec<TableInfo>, NlError> {
        let mut last = None;
        // A dump interrupted by a concurrent change is asked for again.
        for _ in 0..3 {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            match self.nl.dump(
                &list_tables_request(family, seq),
                seq,
                "listing nf_tables tables",
            ) {
                Ok(msgs) => return Ok(msgs.iter().filter_map(|m| parse_table_info(m)).collect()),
                Err(e) if e.source.kind() == io::ErrorKind::Interrupted => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts"))
    }
}

/// Install `table` atomically in the calling thread's namespace, on a
/// socket opened for the purpose. (A table with
/// [`super::TABLE_F_OWNER`] would vanish again when that socket closes:
/// keep an [`NftSocket`] for those.)
pub fn apply(table: &Table) -> Result<(), NlError> {
    NftSocket::open()?.add_table(table)
}

/// Delete the table `name` of `family` in the calling thread's namespace.
pub fn delete_table(family: Family, name: &str) -> Result<(), NlError> {
    NftSocket::open()?.delete_table(family, name)
}
