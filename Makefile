# actlab — the two set-up commands are `make report` and `make test`.
CARGO ?= cargo
ACTLAB := target/release/actlab
LANG_OPT := $(if $(BOOK_LANG),--lang $(BOOK_LANG),)

.PHONY: all build report verify test bench clean

all: build

build:
	$(CARGO) build --release

# The main job: summarise artifacts/ and build the book into book/book/.
report: build
	$(ACTLAB) report

# Retrain the first epochs of each run and compare with the stored history hashes.
verify: build
	$(ACTLAB) verify $(VERIFY_ARGS)

test:
	$(CARGO) test --release

bench: build
	$(ACTLAB) bench

clean:
	$(CARGO) clean
	rm -rf book/book
