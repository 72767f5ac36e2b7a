"""ftx's Optuna sweeper for Hydra (`hydra/sweeper=ftx`), found by Hydra's plugin scan of `hydra_plugins`.

sweeper.py  the Sweeper: ask a batch, launch it through Hydra's launcher, tell; resumable studies
_space.py   search space: Hydra sweep syntax or dicts → Optuna distributions, checked against the config
config.py   the settings schema (ConfigStore `hydra/sweeper=ftx`); the `sweep` group is ftx/conf/sweep/*.yaml
report.py   best override line and YAML, trials.csv, plots, report.md
The job side (reporting to the trial, pruning, storage) is ftx/track/sweep.py.
"""
