"""Step 1: assign every image of data/dataset_info.csv to train/valid/test (`pfp split`).

    python steps/01_generate_splits.py [--demo] [--config configs/default.yaml] [--set split.seed=7]
"""

from _common import main, parser

if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--demo", action="store_true", help="Generate the synthetic dataset first if data/ has none.")
    args = p.parse_args()
    main(args, lambda project: project.split(demo=args.demo))
