from bnlib.cli import main

raise SystemExit(main())
