"""Small Flask app for ruwsgi.

Routes:
  GET  /        plain "Hello from Flask!"
  POST /echo    echoes the posted JSON back as {"you_sent": ...} (400 if not JSON)
  GET  /stream  streamed response from a generator (?n=COUNT lines, default 10)

Run: ruwsgi --ini uwsgi.ini   (or `python app.py` for Flask's dev server)
"""
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/")
def hello():
    return Response("Hello from Flask!\n", mimetype="text/plain")


@app.post("/echo")
def echo():
    data = request.get_json(silent=True)
    if data is None:
        return jsonify(error="expected a JSON body"), 400
    return jsonify(you_sent=data)


@app.get("/stream")
def stream():
    count = request.args.get("n", default=10, type=int)
    delay = request.args.get("delay", default=0.0, type=float)

    def generate():
        for i in range(count):
            yield f"line {i}\n"
            if delay:
                time.sleep(delay)

    return Response(generate(), mimetype="text/plain")


# uWSGI's default callable name is `application`; `app` works via `callable = app`.
application = app

if __name__ == "__main__":
    app.run(port=8080)
