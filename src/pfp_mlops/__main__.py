from pfp_mlops.cli.app import main

main()
