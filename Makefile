# actlab — the two set-up commands are `make report` and `make test`.
CARGO ?= cargo
ACTLAB := target/release/actlab
# `make report LANG=ja` builds one edition; plain `make report` builds all.
# (Only a LANG given on the command line counts: the environment's is a locale.)
LANG_OPT := $(if $(filter command line,$(origin LANG)),--lang $(LANG),)

.PHONY: all build report verify publish-check test bench clean

all: build

build:
	$(CARGO) build --release

# The main job: summarise artifacts/ and build the book into book/book/<lang>/.
report: build
	$(ACTLAB) report $(LANG_OPT)

# Retrain the first epoch of every finished run and compare the bytes.
VERIFY_STUDIES ?= positive-only earlier
verify: build
	@set -e; for s in $(VERIFY_STUDIES); do $(ACTLAB) verify $$s --epochs 1; done

# Exactly what .github/workflows/book.yml publishes, with every link checked.
publish-check: build
	$(ACTLAB) publish-check

test:
	$(CARGO) test --release

bench: build
	$(ACTLAB) bench

clean:
	$(CARGO) clean
	rm -rf book/book book/build
