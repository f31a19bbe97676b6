#!/usr/bin/env python3
"""The seed: a small reproduction of the course's game API, for bench/ingest.

The course's stack runs a Flask app under gunicorn that turns each request
into a JSON event, the request's headers merged in, and hands it to
kafka-python's KafkaProducer.send without waiting for the broker's ack
(fire-and-forget, as the course's game_api.py does). It keeps no player
state: /buy_sword?username=u1 always "succeeds".

Run it as the bench does, against any Kafka-protocol broker:

    SEED_BROKERS=127.0.0.1:9092 SEED_TOPIC=events \
        gunicorn -w 2 -b 127.0.0.1:5001 --chdir bench/ingest/seed app:app

Environment: SEED_BROKERS (bootstrap servers, default 127.0.0.1:9092),
SEED_TOPIC (default "events").
"""

import json
import os

from flask import Flask, request
from kafka import KafkaProducer

app = Flask(__name__)

# One producer per gunicorn worker: gunicorn imports this module in each
# worker it forks (no --preload), so no producer thread crosses a fork.
producer = KafkaProducer(
    bootstrap_servers=os.environ.get("SEED_BROKERS", "127.0.0.1:9092").split(",")
)
topic = os.environ.get("SEED_TOPIC", "events")


def log_to_kafka(event):
    event.update(request.headers)
    producer.send(topic, json.dumps(event).encode())


@app.route("/")
def default_response():
    log_to_kafka({"event_type": "default"})
    return "This is the default response!\n"


@app.route("/buy_sword")
def buy_sword():
    log_to_kafka(
        {"event_type": "buy_sword", "username": request.args.get("username", "")}
    )
    return "Sword Purchased!\n"


@app.route("/healthz")
def healthz():
    # Not the seed's: the bench polls it to know a worker answers, and it
    # logs no event, so the topic holds only the measured requests' events.
    return "ok\n"
