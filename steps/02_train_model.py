"""Step 2: train YOLO with an Optuna study on the VALID split, tracked in MLflow (`pfp train`).

    python steps/02_train_model.py [--trials N] [--timeout SECONDS] [--epochs N] [--device D]
"""

from _common import main, parser

if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=None, help="Trials of the study (= train.search.n_trials).")
    p.add_argument("--timeout", type=float, default=None, help="Wall-clock budget (= train.search.timeout_s).")
    p.add_argument("--epochs", type=int, default=None, help="Epochs (= train.epochs).")
    p.add_argument("--device", default=None, help="cpu, auto, 0 or 0,1 (replaces PFP_DEVICE).")
    args = p.parse_args()
    main(args, lambda project: project.train(trials=args.trials, timeout=args.timeout, epochs=args.epochs,
                                             device=args.device))
