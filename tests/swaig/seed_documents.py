"""SignalWire's SWML `ai` examples (seed 004), re-indented as YAML. URLs say https://example.com;
tests point them at a loopback server."""

JOKE_TRANSFER = """
sections:
  main:
    - ai:
        prompt:
          text: >-
            Your name is Frank. You help transfer to the right department.
            Use the 'get_joke' function to get a joke.
        post_prompt: Summarize the call as a json object
        post_prompt_url: https://example.com/post_prompt_url
        SWAIG:
          functions:
            - function: transfer
              active: 'false'
              purpose: use to transfer to a target
              argument:
                type: object
                properties:
                  target:
                    description: the target to transfer to
                    type: string
              data_map:
                expressions:
                  - pattern: "\\\\w+"
                    string: "${meta_data.table.${lc:args.target}}"
                    output:
                      action:
                        - say: Please stand by while I connect your call.
                        - SWML:
                            version: 1.0.0
                            sections:
                              main:
                                - connect:
                                    to: "${meta_data.table.${lc:args.target}}"
                        - stop: 'true'
                      response: transferred, the call has ended.
                  - string: "${args.target}"
                    pattern: ".*"
                    output:
                      response: I'm sorry, I was unable to transfer your call to ${input.args.target}.
              meta_data:
                table:
                  support: "+1XXXXXXXXXX"
                  sales: "+1YYYYYYYYYY"
            - function: get_joke
              purpose: used to get a joke
              argument:
                type: object
                properties:
                  type:
                    type: string
                    description: must either be 'jokes' or 'dadjokes'
              data_map:
                webhooks:
                  - url: https://example.com/v1/${args.type}
                    headers:
                      X-Api-Key: API TOKEN HERE
                    method: GET
                    output:
                      response: 'Tell the user: ${array[0].joke}.'
                      action:
                        - toggle_functions:
                            - active: 'true'
                              function: transfer
"""

BLABBERMOUTH = """
sections:
  main:
    - ai:
        prompt:
          text: >-
            Your name is Mr. Blabbermouth. You help the user.
        post_prompt:
          text: Summarize the call in JSON format.
          temperature: 0.1
          top_p: 0.1
        post_prompt_url: https://example.com/post_prompt_url
        params:
          swaig_allow_swml: true
        SWAIG:
          functions:
            - function: store_user
              purpose: Store the user information
              argument:
                type: object
                properties:
                  name:
                    type: string
                    description: The name of the user
              data_map:
                webhooks:
                  - url: https://example/name_bank?name=${lc:args.name}
                    method: GET
                    output:
                      response: The user information was stored. User information can now
                        be looked up with the "get_user_info" function.
                      action:
                        - set_meta_data:
                            ${lc:input.args.name}: ${Records[0].secret}
                        - back_to_back_functions: true
                        - toggle_functions:
                            - active: true
                              function: get_user_info
                        - say: Your info was stored.
              meta_data_token: example_token
            - function: get_user_info
              purpose: lookup user information
              argument:
                type: object
                properties:
                  name:
                    type: string
                    description: The name of the user
              data_map:
                expressions:
                  - string: ${lc:args.name}
                    pattern: /\\w+/i
                    output:
                      response: The meta_data is valid. User has already been told their
                        information. Do no repeat it.
                      action:
                        - say: Your info is ${meta_data.${lc:args.name}}
                        - stop: true
                  - string: /.*/
                    pattern: /.*/
                    output:
                      response: The meta_data is invalid. User has not been told their information.
              active: 'false'
              meta_data_token: example_token
"""

EXPRESSIONS_TRANSFER = """
sections:
  main:
    - ai:
        prompt:
          text: Your name is Frank. You help transfer to the right department.
        post_prompt: Summarize the call as a json object
        post_prompt_url: https://example.com/post_prompt_url
        SWAIG:
          functions:
            - function: transfer
              purpose: use to transfer to a target
              data_map:
                expressions:
                  - pattern: \\\\w+
                    string: ${meta_data.table.${lc:args.target}}
                    output:
                      action:
                        - say: Please stand by while I connect your call.
                        - SWML:
                            version: 1.0.0
                            sections:
                              main:
                                - connect:
                                    from: '+1XXXXXXXXXX'
                                    to: ${meta_data.table.${lc:args.target}}
                        - stop: true
                      response: transferred, the call has ended.
                  - string: ${args.target}
                    pattern: .*
                    output:
                      response: I'm sorry, I was unable to transfer your call to ${input.args.target}.
              argument:
                type: object
                properties:
                  target:
                    description: the target to transfer to
                    type: string
              meta_data:
                table:
                  support: '+1XXXXXXXXXX'
                  sales: '+1YYYYYYYYYY'
"""

DATA_MAP_WEBHOOK_TRANSFER = """
sections:
  main:
    - ai:
        prompt:
          text: Your name is Frank. You help transfer to the right department.
        post_prompt: Summarize the call as a json object
        post_prompt_url: https://example.com/here
        SWAIG:
          functions:
            - function: transfer
              purpose: use to transfer to a target
              argument:
                type: object
                properties:
                  target:
                    type: string
                    description: The target to transfer to
              data_map:
                webhooks:
                  - url: https://example.com/v1/destination?name=${enc:args.target}
                    headers:
                      X-Api-Key: api-token-here
                    method: GET
                    output:
                      response: Transferring to ${input.args.target}.
                      action:
                        - SWML:
                            version: 1.0.0
                            sections:
                              main:
                                - connect:
                                    to: ${destination_number}
                          stop: true
"""

SWML_DATA_MAP_TRANSFER = """
sections:
  main:
    - ai:
        prompt:
          text: |-
            Your name is Frank. You help the user with transferring calls.
        post_prompt_url: https://example.com/post_prompt_url
        params:
          swaig_allow_swml: true
        SWAIG:
          functions:
            - function: transfer
              purpose: Get input from user and transfer to a destination department
              argument:
                type: object
                properties:
                  destination:
                    type: string
                    description: The destination to transfer to
              data_map:
                expressions:
                  - string: ${args.destination}
                    pattern: .*
                    output:
                      response: Transferring call.
                      action:
                        - SWML:
                            sections:
                              main:
                                - send_sms:
                                    to_number: '+1XXXXXXXXXX'
                                    from_number: '+1YYYYYYYYYY'
                                    body: Call coming from ${caller_id_num}
                                - connect:
                                    to: '+1XXXXXXXXXX'
                        - stop: true
        hints:
          - transfer
"""

SWML_WEBHOOK_TRANSFER = """
sections:
  main:
    - ai:
        prompt:
          text: |-
            Your name is Frank. You help the user with transferring calls.
        post_prompt_url: https://example.com/post_prompt_url
        params:
          swaig_allow_swml: true
        SWAIG:
          functions:
            - function: transfer
              web_hook_url: https://example.com/transfer
              purpose: Get input from user and transfer to a destination department
              argument:
                type: object
                properties:
                  destination:
                    type: string
                    description: The destination to transfer to
        hints:
          - transfer
"""

SWML_WEBHOOK_ANSWER = {
    "response": "Transferring call.",
    "action": [
        {
            "SWML": {
                "sections": {
                    "main": [
                        {
                            "send_sms": {
                                "to_number": "+1XXXXXXXXXX",
                                "from_number": "+1YYYYYYYYYY",
                                "body": "Call coming from ${caller_id_num}",
                            }
                        },
                        {"connect": {"to": "+1XXXXXXXXXX"}},
                    ]
                }
            }
        }
    ],
}

DECLARING_FUNCTIONS = """
version: 1.0.0
sections:
  main:
    - ai:
        post_prompt_url: "https://example.com/my-api"
        prompt:
          text: |
            You are a helpful assistant that can provide information to users about a destination.
        post_prompt:
          text: "Summarize the conversation."
        SWAIG:
          includes:
            - functions:
                - get_phone_number
                - get_address
              url: https://example.com/functions
              user: me
              pass: secret
          defaults:
            web_hook_url: https://example.com/my-webhook
            web_hook_auth_user: me
            web_hook_auth_pass: secret
          functions:
            - function: get_weather
              purpose: To determine what the current weather is in a provided location.
              argument:
                properties:
                  location:
                    type: string
                    description: The name of the city to find the weather from.
                type: object
"""

STAR_CONTEXT_SWITCH = """
sections:
  main:
    - ai:
        prompt:
          text: |
            You are a multi-personality bot.
        post_prompt_url: https://example.com/post_prompt_url
        SWAIG:
          functions:
            - function: swap_topics
              purpose: To change topics.
              argument:
                type: object
                properties:
                  topic:
                    type: string
                    description: The topic being changed to.
              data_map:
                expressions:
                  - string: ${lc:args.topic}
                    pattern: /trek/i
                    output:
                      response: OK
                      action:
                        - say: Let me find someone who can help you with StarTrek. Please
                            hold.
                        - context_switch:
                            system_prompt: |
                              Your name is Leonard. You are a bot that knows only about StarTrek.
                            user_prompt: I want to talk about StarTrek.
                            consolidate: false
                  - string: ${lc:args.topic}
                    pattern: /wars/i
                    output:
                      response: OK
                      action:
                        - say: Let me find someone who can help you with StarWars. Please
                            hold.
                        - context_switch:
                            system_prompt: |
                              Your name is Luke. You are a bot that knows only about StarWars.
                            user_prompt: I want to talk about StarWars.
                            consolidate: false
                  - string: ${lc:args.topic}
                    pattern: .*
                    output:
                      response: OK
                      action:
                        - say: I'm sorry, I don't know anything about ${args.topic}. Ending
                            call.
                        - stop: true
        hints:
          - StarWars
          - StarTrek
          - topic
"""
