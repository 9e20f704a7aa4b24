"""Performance benchmarks of wflwv: each module prints markdown tables of ratios measured side by side in one run."""
