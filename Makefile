# actlab — the two set-up commands are `make report` and `make test`.
CARGO ?= cargo
# Where cargo puts the binary (CARGO_TARGET_DIR moves it).
ACTLAB := $(or $(CARGO_TARGET_DIR),target)/release/actlab
# `make report LANG=ja` builds one edition; plain `make report` builds all.
# (Only a LANG given on the command line counts: the environment's is a locale.)
LANG_OPT := $(if $(filter command line,$(origin LANG)),--lang $(LANG),)
# Runs `make verify` retrains (one epoch each): a fixed sample that covers
# every study, kind of function and protocol, about 5 minutes on 2 cores.
VERIFY_SAMPLE ?= 6
# Where the book links to its sources: the repository on GitHub when built by
# GitHub Actions (which sets GITHUB_REPOSITORY), otherwise nowhere.
REPOSITORY ?= $(if $(GITHUB_REPOSITORY),$(GITHUB_SERVER_URL)/$(GITHUB_REPOSITORY),)
REPO_OPT := $(if $(REPOSITORY),--repository $(REPOSITORY),)

.PHONY: all build report verify verify-all publish-check test bench clean

all: build

build:
	$(CARGO) build --release

# The main job: summarise artifacts/ and build the book into book/book/<lang>/.
report: build
	$(ACTLAB) report $(LANG_OPT) $(REPO_OPT)

# Retrain the first epoch of a fixed sample of the published runs and compare the bytes.
verify: build
	$(ACTLAB) verify --sample $(VERIFY_SAMPLE)

# The same for every published run (about 80 s per full-protocol run here).
verify-all: build
	$(ACTLAB) verify

# Exactly what .github/workflows/book.yml publishes, with every link checked.
publish-check: build
	$(ACTLAB) publish-check $(REPO_OPT)

test:
	$(CARGO) test --release

bench: build
	$(ACTLAB) bench

clean:
	$(CARGO) clean
	rm -rf book/book book/build
