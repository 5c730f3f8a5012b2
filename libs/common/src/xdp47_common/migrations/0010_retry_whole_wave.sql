-- A retry's gates judge each wave as a whole: the devices of the wave that
-- applied in earlier attempts count with the retry's own (xdp47_common.rollout
-- gates, WaveCounters.prior_succeeded). The retry writes the per-wave count
-- here with the wave's re-planned targets (``pending``), so a gate never counts
-- a wave's targets.
ALTER TABLE rollout_waves ADD COLUMN prior_applied integer NOT NULL DEFAULT 0;
