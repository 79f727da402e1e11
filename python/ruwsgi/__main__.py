import sys

from ruwsgi import _ruwsgi


def main():
    sys.exit(_ruwsgi.run(sys.argv))


if __name__ == "__main__":
    main()
