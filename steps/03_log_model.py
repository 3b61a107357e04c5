"""Step 3: evaluate on TEST, check production can load it, log and register a new model version (`pfp register`).

    python steps/03_log_model.py [--check-env] [--env-manager uv]
"""

from _common import main, parser

if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--check-env", action="store_true", help="Also predict in an isolated environment (needs an index).")
    p.add_argument("--env-manager", default="uv", choices=("uv", "virtualenv", "conda"))
    args = p.parse_args()
    main(args, lambda project: project.register(check_env=args.env_manager if args.check_env else None))
