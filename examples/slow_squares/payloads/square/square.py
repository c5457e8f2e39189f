"""Square one number, slowly (a second), so that a node can be stopped while the job runs."""

import json
import os
import time

with open(os.environ["MIRROR_NEURON_INPUT_FILE"]) as message:
    number = json.load(message)["n"]
time.sleep(float(os.environ.get("SQUARE_SECONDS", "1")))
print(json.dumps({"n": number, "square": number * number}))
