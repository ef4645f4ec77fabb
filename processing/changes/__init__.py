"""Change detection on share of voice: spikes, sustained shifts and slow drifts, calibrated to stated false-alarm rates."""
