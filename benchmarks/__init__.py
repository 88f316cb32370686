"""q2pconf benchmarks: `python -m benchmarks` prints one table of ratios, each measured side
by side with its baseline in the same run (these machines are noisy; absolute times are not
comparable between runs)."""
