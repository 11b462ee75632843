"""How a build's stages are scheduled: executors run the pipeline's task functions somewhere.

base.py   what executors and the pipeline exchange (BuildContext, SongOutcome, SongTasks, Executor)
local.py  the default: worker processes on every core, one model worker on the GPU
ray.py    a Ray cluster: CPU tasks on every node, one model actor per GPU (optional extra: '.[ray]')
warm.py   what the local fork server imports once, so that workers start warm
choose.py ``make_executor``: the executor that ``build.executor`` names (what scripts/build.py calls)
"""
