from tinybounty.runner.run import main

raise SystemExit(main())
