//! Parsing `cluster.initial_members` into node ids and Raft addresses.
//!
//! The guide lists addresses only: the i-th entry is node `i + 1`. An entry may also name its
//! id, `"2@host:port"`. Invariants of the result: ids are unique and fit a broker id (`i32`,
//! not negative); addresses are unique and look like `host:port` with a valid port.

use std::collections::BTreeMap;

use super::error::ClusterError;
use super::raft::NodeId;

fn invalid(message: String) -> ClusterError {
    ClusterError::Config {
        field: "cluster.initial_members",
        message,
    }
}

/// Checks that `addr` is `host:port` (an IPv6 host in brackets).
pub fn check_address(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("'{addr}' is not host:port"))?;
    if host.is_empty() {
        return Err(format!("'{addr}' has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("'{addr}' has no valid port")),
    }
}

/// The initial voters: node id to Raft address.
pub fn parse_members(entries: &[String]) -> Result<BTreeMap<NodeId, String>, ClusterError> {
    let mut members = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry = entry.trim();
        let (id, addr) = match entry.split_once('@') {
            Some((id, addr)) => {
                let id = id.trim().parse::<NodeId>().map_err(|_| {
                    invalid(format!("'{entry}': '{id}' before '@' is not a node id"))
                })?;
                (id, addr.trim())
            }
            None => (i as NodeId + 1, entry),
        };
        if id > i32::MAX as NodeId {
            return Err(invalid(format!(
                "'{entry}': node id {id} is above {}",
                i32::MAX
            )));
        }
        check_address(addr).map_err(|m| invalid(format!("entry {}: {m}", i + 1)))?;
        if members.values().any(|a: &String| a == addr) {
            return Err(invalid(format!("address {addr} is listed twice")));
        }
        if members.insert(id, addr.to_string()).is_some() {
            return Err(invalid(format!("node id {id} is listed twice")));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Vec<(u64, String)>, ClusterError> {
        let v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse_members(&v).map(|m| m.into_iter().collect())
    }

    #[test]
    fn positions_and_explicit_ids() {
        assert_eq!(
            parse(&["localhost:8001", "localhost:8002"]).unwrap(),
            vec![(1, "localhost:8001".into()), (2, "localhost:8002".into())]
        );
        assert_eq!(
            parse(&["7@10.0.0.1:8001", " 3@[::1]:8002 "]).unwrap(),
            vec![(3, "[::1]:8002".into()), (7, "10.0.0.1:8001".into())]
        );
    }

    #[test]
    fn bad_lists_name_the_problem() {
        for bad in [
            vec!["localhost"],
            vec!["localhost:0"],
            vec![":8001"],
            vec!["x@localhost:8001"],
            vec!["a:1", "a:1"],
            vec!["2@a:1", "b:2"],
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains("cluster.initial_members"), "{err}");
        }
    }
}
