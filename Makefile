# framewatch: the two front-door commands are `make up` and `make test` (see README).
SHELL := /bin/bash
VENV = $(shell scripts/bootstrap.sh)

.PHONY: up test lint kafka-start kafka-stop

up:  ## run the whole local stack (Kafka, ingest, processing, aggregation, notifier, Prometheus)
	@venv=$(VENV) && $$venv/bin/framewatch up $(ARGS)

test:  ## install what the tests need, start Kafka, lint, run every test
	@venv=$(VENV) && PATH=$$venv/bin:$$PATH scripts/test.sh $(ARGS)

lint:
	@venv=$(VENV) && $$venv/bin/ruff check .

kafka-start:
	deploy/kafka/kafka.sh start

kafka-stop:
	deploy/kafka/kafka.sh stop
