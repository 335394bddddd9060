from medmoe_lm_eval.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
