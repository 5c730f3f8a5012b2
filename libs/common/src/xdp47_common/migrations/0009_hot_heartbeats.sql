-- Heartbeat updates of devices become HOT (heap-only tuple) updates.
--
-- Every heartbeat rewrites a device row (last_seen, health, metrics ...). An
-- update that changes no indexed column and finds room on its page is HOT: no
-- index entry is written and the old version is pruned in place. The partial
-- index on last_seen made every heartbeat a full update with an entry in each
-- of the table's indexes (primary key, credential hash, labels, channel ...),
-- which cost PostgreSQL ~30 % more per heartbeat (docs/performance.md) and
-- bloated the indexes. Its only user, the scheduler's offline marking, scans
-- the online devices a few times per XDP47_SCHED_OFFLINE_AFTER instead.
DROP INDEX devices_last_seen;

-- Room on each page for the next version of its rows (new pages; existing ones
-- get it as they are rewritten).
ALTER TABLE devices SET (fillfactor = 80);
