"""Where an input counts as long: the one length from which the compiler trades a little speed on
short inputs for memory that stays linear on long ones. Models whose `max_length` stays below it
keep the short-input forms everywhere (tfcompiler.lower.long_inputs, tfcompiler.passes.pack_projections).
"""

# Keys from which these pay on CPU (benchmarks/gate_crossover.py): flash (heads of 64) 2.8% slower at
# 128 keys, 0.5% at 512, 2.5% faster at 1024, 7.8% at 2048, 1.3x at 4096; causal blocks (width 768,
# 12 heads) 4.9% slower at 128, even at 512, 5.9% faster at 1024, 15.6% at 2048, 37% at 4096;
# bidirectional blocks (a padded batch) about even at 1024 and faster from 2048, with memory linear.
LONG_FROM = 1024
